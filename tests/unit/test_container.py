"""The default container: constructor injection, lifetimes, scopes as long as one send or one stream."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

import cqrs

from ._support import Number, Numbers


class Clock:
    pass


class Repository:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock


class Session:
    opened: list[Session] = []
    closed: list[Session] = []


async def open_session() -> AsyncIterator[Session]:
    session = Session()
    Session.opened.append(session)
    try:
        yield session
    finally:
        Session.closed.append(session)


async def test_constructor_injection_and_lifetimes() -> None:
    container = cqrs.Container()
    container.register(Clock, lifetime="singleton")
    repo1 = await container.resolve(Repository)
    repo2 = await container.resolve(Repository)
    assert repo1 is not repo2 and repo1.clock is repo2.clock
    marker = Clock()
    container.register_instance(Clock, marker)
    assert (await container.resolve(Repository)).clock is marker


async def test_scoped_types_need_a_scope() -> None:
    container = cqrs.Container()
    container.register(Session, open_session, lifetime="scoped")
    with pytest.raises(cqrs.ResolutionError, match="scoped"):
        await container.resolve(Session)
    Session.opened.clear()
    Session.closed.clear()
    async with container.open_scope() as scope:
        assert await scope.resolve(Session) is await scope.resolve(Session)
        assert Session.closed == []
    assert Session.closed == Session.opened and len(Session.opened) == 1


def test_unresolvable_parameters_are_named() -> None:
    class Needs:
        def __init__(self, size: int, name) -> None:  # type: ignore[no-untyped-def]
            pass

    container = cqrs.Container()
    with pytest.raises(cqrs.ResolutionError, match="'name'"):
        import asyncio

        asyncio.run(container.resolve(Needs))


def test_register_rejects_unknown_lifetimes() -> None:
    with pytest.raises(ValueError, match="lifetime"):
        cqrs.Container().register(Clock, lifetime="forever")  # type: ignore[arg-type]


class UsesSession(cqrs.StreamingRequestHandler[Numbers, Number]):
    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    async def handle(self, request: Numbers) -> AsyncIterator[Number]:
        for i in range(request.count):
            assert self.session not in Session.closed  # open for the whole stream
            yield Number(value=id(self.session) if i == 0 else i)


class UnaryUsesSession(cqrs.RequestHandler[Numbers, Number]):
    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    async def handle(self, request: Numbers) -> Number:
        return Number(value=id(self.session))


def _container() -> cqrs.Container:
    container = cqrs.Container()
    container.register(Session, open_session, lifetime="scoped")
    Session.opened.clear()
    Session.closed.clear()
    return container


async def test_a_scope_lives_exactly_as_long_as_one_stream() -> None:
    mediator = cqrs.bootstrap_streaming(_container(), commands_mapper=lambda m: m.bind(Numbers, UsesSession))
    values = [n.value async for n in mediator.stream(Numbers(count=3))]
    assert values[0] == id(Session.opened[0]) and Session.closed == Session.opened
    [n async for n in mediator.stream(Numbers(count=1))]
    assert len(Session.opened) == 2 and Session.opened[0] is not Session.opened[1]


async def test_closing_a_stream_early_closes_its_scope_before_aclose_returns() -> None:
    mediator = cqrs.bootstrap_streaming(_container(), commands_mapper=lambda m: m.bind(Numbers, UsesSession))
    async with contextlib.aclosing(mediator.stream(Numbers(count=5))) as stream:
        await anext(stream)
        assert Session.closed == []
    assert Session.closed == Session.opened


async def test_a_scope_lives_exactly_as_long_as_one_send() -> None:
    mediator = cqrs.bootstrap(_container(), commands_mapper=lambda m: m.bind(Numbers, UnaryUsesSession))
    first = await mediator.send(Numbers())
    await mediator.send(Numbers())
    assert first.value == id(Session.opened[0])
    assert Session.closed == Session.opened and len(Session.opened) == 2


class SyncResource:
    closed = False


@contextlib.contextmanager
def sync_resource() -> Iterator[SyncResource]:
    resource = SyncResource()
    yield resource
    SyncResource.closed = True


async def test_sync_context_manager_providers_are_exited_with_the_scope() -> None:
    container = cqrs.Container()
    container.register(SyncResource, sync_resource, lifetime="scoped")
    async with container.open_scope() as scope:
        await scope.resolve(SyncResource)
        assert not SyncResource.closed
    assert SyncResource.closed


class OwnContainer:
    """Any object with ``async resolve`` works (no scopes)."""

    def __init__(self) -> None:
        self.resolved: list[type] = []

    async def resolve(self, type_: type) -> object:
        self.resolved.append(type_)
        return type_()


async def test_a_foreign_container_only_needs_resolve() -> None:
    from ._support import NumbersHandler

    own = OwnContainer()
    mediator = cqrs.bootstrap_streaming(own, commands_mapper=lambda m: m.bind(Numbers, NumbersHandler))
    from ._support import Log

    Log()
    assert [n.value async for n in mediator.stream(Numbers(count=2))] == [0, 1]
    assert own.resolved == [NumbersHandler]
