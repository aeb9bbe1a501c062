"""From service descriptors to routes: which Request class and mediator serve each RPC.

Everything that can be wrong with the wiring is found here, before the port is bound: an RPC
without a handler, a streaming RPC whose handler is not an async generator, a message field
missing on one side. All problems are collected and reported together, each naming the RPC,
the Python class and the field, so one failed start shows the whole list.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message_factory

from cqrs import Request, RequestMediator, Response, StreamingRequestMediator
from cqrs.requests.request_handler import handler_types
from server.codec import check_fields, compile_decoder, compile_encoder

ServiceSource = types.ModuleType | pb_descriptor.FileDescriptor | pb_descriptor.ServiceDescriptor


class StartupError(Exception):
    """The app cannot serve its protos as wired; ``problems`` lists every reason."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"the server cannot start, {len(self.problems)} problem(s):\n{lines}")


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """One RPC bound to its Request class, mediator kind and compiled codecs."""

    service: str
    method: str
    streaming: bool
    request_type: type[Request]
    response_type: type[Response]
    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes]

    @property
    def key(self) -> str:
        """``package.Service/Method``, the form used for ``bindings`` overrides."""
        return f"{self.service}/{self.method}"

    @property
    def path(self) -> str:
        """``/package.Service/Method``, the HTTP/2 path gRPC uses."""
        return f"/{self.service}/{self.method}"


def service_descriptors(source: ServiceSource) -> list[pb_descriptor.ServiceDescriptor]:
    """The services of a generated ``*_pb2`` module, a FileDescriptor or a ServiceDescriptor."""
    if isinstance(source, pb_descriptor.ServiceDescriptor):
        return [source]
    file_descriptor = source if isinstance(source, pb_descriptor.FileDescriptor) else None
    if file_descriptor is None:
        file_descriptor = getattr(source, "DESCRIPTOR", None)
    if not isinstance(file_descriptor, pb_descriptor.FileDescriptor):
        raise TypeError(
            f"add_services() takes a generated *_pb2 module, a FileDescriptor or a ServiceDescriptor, "
            f"not {source!r}"
        )
    services = list(file_descriptor.services_by_name.values())
    if not services:
        raise TypeError(f"{file_descriptor.name} defines no service: pass the *_pb2 module that declares one")
    return services


def build_routes(
    services: Iterable[pb_descriptor.ServiceDescriptor],
    *,
    streaming_mediator: StreamingRequestMediator | None,
    mediator: RequestMediator | None,
    bindings: Mapping[str, type[Request]],
) -> list[Route]:
    """Bind every RPC of ``services``; raise StartupError listing every problem found."""
    problems: list[str] = []
    routes: list[Route] = []
    known = {f"{service.full_name}/{method.name}" for service in services for method in service.methods}
    problems += [
        f"bindings names {key!r}, which is not an RPC of the added services "
        f"(known: {', '.join(sorted(known))})"
        for key in bindings
        if key not in known
    ]
    for service in services:
        for method in service.methods:
            route = _bind(service, method, streaming_mediator, mediator, bindings, problems)
            if route is not None:
                routes.append(route)
    if problems:
        raise StartupError(problems)
    return routes


def _naming_fix(service: pb_descriptor.ServiceDescriptor, method: pb_descriptor.MethodDescriptor) -> str:
    """How to give an unrouted RPC its Request class. A message of another package (``Empty``, a
    type several services share) is rarely worth a class of that name, so ``bindings`` comes first."""
    binding = f'add_services(..., bindings={{"{service.full_name}/{method.name}": YourRequest}})'
    message = method.input_type
    if message.file.package != service.file.package:
        return f"{message.full_name} comes from {message.file.name}: name this RPC's Request class: {binding}"
    return f"bind a Request class named {message.name}, or name one for this RPC with {binding}"


def _bind(
    service: pb_descriptor.ServiceDescriptor,
    method: pb_descriptor.MethodDescriptor,
    streaming_mediator: StreamingRequestMediator | None,
    mediator: RequestMediator | None,
    bindings: Mapping[str, type[Request]],
    problems: list[str],
) -> Route | None:
    rpc = f"rpc {service.full_name}/{method.name}"
    if method.client_streaming:
        problems.append(f"{rpc} is client-streaming; only unary and server-streaming RPCs are served")
        return None
    streaming = bool(method.server_streaming)
    chosen = streaming_mediator if streaming else mediator
    kind = "bootstrap_streaming(...) mediator" if streaming else "bootstrap(...) mediator"
    if chosen is None:
        argument = "streaming_mediator" if streaming else "mediator"
        problems.append(
            f"{rpc} is {'server-streaming' if streaming else 'unary'} but the App has no "
            f"{argument}: pass App({argument}=...)"
        )
        return None
    request_map = dict(chosen.request_map.items())
    request_type = bindings.get(f"{service.full_name}/{method.name}")
    if request_type is None:
        named = [c for c in request_map if c.__name__ == method.input_type.name]
        if len(named) > 1:
            names = ", ".join(f"{c.__module__}.{c.__qualname__}" for c in named)
            problems.append(
                f"{rpc}: several bound Request classes are named {method.input_type.name} ({names}); "
                "pick one with bindings="
            )
            return None
        request_type = named[0] if named else None
    if request_type is None:
        other = mediator if streaming else streaming_mediator
        hint = ""
        if other is not None and any(
            c.__name__ == method.input_type.name for c, _ in other.request_map.items()
        ):
            hint = f"; {method.input_type.name} is bound to the other mediator, but this RPC needs the {kind}"
        problems.append(
            f"{rpc} has no handler: no Request class named {method.input_type.name} is bound in the {kind}"
            f"{hint} (bound: {', '.join(sorted(c.__name__ for c in request_map)) or 'nothing'}); "
            f"{_naming_fix(service, method)}"
        )
        return None
    handler = request_map.get(request_type)
    if handler is None:
        problems.append(f"{rpc} is bound to {request_type.__qualname__}, which has no handler in the {kind}")
        return None
    is_generator = inspect.isasyncgenfunction(getattr(handler, "handle", None))
    if streaming and not is_generator:
        problems.append(
            f"{rpc} is server-streaming but {handler.__qualname__}.handle is not an async generator "
            "(write it with `yield`)"
        )
        return None
    if not streaming and is_generator:
        problems.append(f"{rpc} is unary but {handler.__qualname__}.handle is an async generator")
        return None
    response_type = handler_types(handler)[1]
    if response_type is None:
        problems.append(
            f"{rpc}: cannot tell the Response class of {handler.__qualname__}; "
            "declare it as a generic argument, e.g. StreamingRequestHandler[Command, Result]"
        )
        return None
    request_message = message_factory.GetMessageClass(method.input_type)
    response_message = message_factory.GetMessageClass(method.output_type)
    field_problems = check_fields(method.input_type, request_type, where=f"{rpc} request") + check_fields(
        method.output_type, response_type, where=f"{rpc} response"
    )
    if field_problems:
        problems.extend(field_problems)
        return None
    return Route(
        service=service.full_name,
        method=method.name,
        streaming=streaming,
        request_type=request_type,
        response_type=response_type,
        decode=compile_decoder(request_message, request_type),
        encode=compile_encoder(response_type, response_message),
    )
