"""python-cqrs containers: di and dependency-injector adapters, the protocol (issue 17)."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import Annotated, Any

import di
import pytest
from dependency_injector import containers, providers
from di.dependent import Marker

import cqrs
from cqrs.container import adapt
from cqrs.container.dependency_injector import DependencyInjectorCQRSContainer
from cqrs.container.di import DIContainer
from cqrs.container.protocol import Container as ContainerProtocol
from cqrs.requests import bootstrap


class Repo:
    pass


class IService(abc.ABC):
    @abc.abstractmethod
    def name(self) -> str: ...


class Service(IService):
    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def name(self) -> str:
        return "service"


class Other(Service):
    def name(self) -> str:
        return "other"


class App(containers.DeclarativeContainer):
    repo = providers.Factory(Repo)
    service = providers.Singleton(Service, repo=repo)


class Nested(containers.DeclarativeContainer):
    app = providers.Container(App)


def _attached(container: Any) -> DependencyInjectorCQRSContainer:
    adapter = DependencyInjectorCQRSContainer()
    adapter.attach_external_container(container)
    return adapter


async def test_dependency_injector_resolves_by_class_nested_and_by_interface() -> None:
    adapter = _attached(Nested())
    service = await adapter.resolve(Service)
    assert isinstance(service.repo, Repo)
    assert await adapter.resolve(IService) is service  # a singleton, found through its interface


async def test_dependency_injector_overrides_apply_and_unknown_types_fail_clearly() -> None:
    app = App()
    adapter = _attached(app)
    app.service.override(providers.Factory(Other, repo=app.repo))
    assert (await adapter.resolve(IService)).name() == "other"
    with pytest.raises(ValueError, match="Provider for type Other not found"):
        await adapter.resolve(Other)


def test_an_adapter_without_a_container_says_so() -> None:
    with pytest.raises(ValueError, match="External container not attached"):
        _ = DependencyInjectorCQRSContainer().external_container
    with pytest.raises(ValueError, match="External container not attached"):
        _ = DIContainer().external_container


class Ask(cqrs.Request):
    pass


class Answer(cqrs.Response):
    text: str


CLOSED: list[str] = []


def session() -> Iterator[str]:
    yield "session"
    CLOSED.append("session")


class AskHandler(cqrs.RequestHandler[Ask, Answer]):
    def __init__(self, repo: Repo, db: Annotated[str, Marker(session, scope="request")]) -> None:
        self.repo = repo
        self.db = db

    async def handle(self, request: Ask) -> Answer:
        return Answer(text=f"{type(self.repo).__name__}:{self.db}")


async def test_bootstrap_takes_a_bare_di_container_and_scopes_each_send() -> None:
    CLOSED.clear()
    mediator = bootstrap.bootstrap(
        di_container=di.Container(), commands_mapper=lambda m: m.bind(Ask, AskHandler)
    )
    assert isinstance(mediator.container, DIContainer)
    assert await mediator.send(Ask()) == Answer(text="Repo:session")
    assert CLOSED == ["session"]  # the request scope closed with the send


def test_adapt_leaves_other_containers_alone() -> None:
    container = cqrs.Container()
    assert adapt(container) is container
    assert isinstance(adapt(di.Container()), DIContainer)


async def test_the_protocol_is_a_generic_base_a_container_may_subclass() -> None:
    class Mine(ContainerProtocol[object]):
        def __init__(self) -> None:
            self._external: object = None

        @property
        def external_container(self) -> object:
            return self._external

        def attach_external_container(self, container: object) -> None:
            self._external = container

        async def resolve(self, type_: type[Any]) -> Any:
            return type_()

    mine = Mine()
    mine.attach_external_container("x")
    assert mine.external_container == "x" and isinstance(await mine.resolve(Repo), Repo)
