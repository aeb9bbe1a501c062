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
from google.protobuf.message import Message

from cqrs import Request, RequestMediator, Response, StreamingRequestMediator
from cqrs.requests.request_handler import handler_types, takes_request_stream
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
    """One RPC bound to its Request class, mediator kind and compiled codecs.

    ``client_streaming``: the handler reads a :class:`cqrs.RequestStream`; ``streaming``: it yields
    the responses (server-streaming or bidi). ``request_type`` is None for an RPC left unserved on
    purpose (``bindings={key: None}``): it answers UNIMPLEMENTED.
    """

    service: str
    method: str
    streaming: bool
    request_type: type[Request] | None
    response_type: type[Response] | None
    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes]
    client_streaming: bool = False
    # the protobuf classes of the RPC's input and output, for transports that speak JSON (server/web)
    request_class: type[Message] | None = None
    response_class: type[Message] | None = None

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
    bindings: Mapping[str, type[Request] | None],
) -> list[Route]:
    """Bind every RPC of ``services``; raise StartupError listing every problem found.

    An RPC is bound by ``bindings`` (``None`` leaves it unserved: UNIMPLEMENTED), else by the name of
    its input message, but only where no other RPC of ``services`` takes the same message.
    """
    services = list(services)
    problems: list[str] = []
    routes: list[Route] = []
    known = {f"{service.full_name}/{method.name}" for service in services for method in service.methods}
    problems += [
        f"bindings names {key!r}, which is not an RPC of the added services "
        f"(known: {', '.join(sorted(known))})"
        for key in bindings
        if key not in known
    ]
    takers: dict[str, list[str]] = {}
    for service in services:
        for method in service.methods:
            takers.setdefault(method.input_type.full_name, []).append(f"{service.full_name}/{method.name}")
    for service in services:
        unrouted = 0
        for method in service.methods:
            shared = [
                key
                for key in takers[method.input_type.full_name]
                if key != f"{service.full_name}/{method.name}"
            ]
            route = _bind(service, method, streaming_mediator, mediator, bindings, shared, problems)
            if route is None:
                unrouted += 1
            else:
                routes.append(route)
        if unrouted == len(service.methods) and len(services) > 1:
            chosen = [s.full_name for s in services if s is not service]
            problems.append(
                f"service {service.full_name} has none of its RPCs bound; if this app does not serve it, "
                f"add only the services it serves: add_services(..., services={chosen!r})"
            )
    if problems:
        raise StartupError(problems)
    return routes


def pick_services(
    services: list[pb_descriptor.ServiceDescriptor], names: Iterable[str]
) -> list[pb_descriptor.ServiceDescriptor]:
    """The services named (full ``pkg.Service`` or short ``Service`` names), in the given order."""
    picked = []
    for name in names:
        found = [s for s in services if name in (s.full_name, s.name)]
        if not found:
            offered = ", ".join(s.full_name for s in services)
            raise ValueError(f"services= names {name!r}, which is not among {offered}")
        picked += found
    return picked


def _kind(method: pb_descriptor.MethodDescriptor) -> str:
    if method.client_streaming:
        return "bidi-streaming" if method.server_streaming else "client-streaming"
    return "server-streaming" if method.server_streaming else "unary"


_HANDLER_BASE = {
    "unary": "RequestHandler",
    "server-streaming": "StreamingRequestHandler",
    "client-streaming": "ClientStreamingRequestHandler",
    "bidi-streaming": "BidiStreamingRequestHandler",
}


def _naming_fix(service: pb_descriptor.ServiceDescriptor, method: pb_descriptor.MethodDescriptor) -> str:
    """How to give an unrouted RPC its Request class. A message of another package (``Empty``, a
    type several services share) is rarely worth a class of that name, so ``bindings`` comes first."""
    binding = f'add_services(..., bindings={{"{service.full_name}/{method.name}": YourRequest}})'
    message = method.input_type
    if message.file.package != service.file.package:
        return f"{message.full_name} comes from {message.file.name}: name this RPC's Request class: {binding}"
    return f"bind a Request class named {message.name}, or name one for this RPC with {binding}"


def _unserved(service: pb_descriptor.ServiceDescriptor, method: pb_descriptor.MethodDescriptor) -> Route:
    def refuse(_: object) -> Any:
        raise AssertionError("an unserved RPC neither decodes nor encodes")

    return Route(
        service=service.full_name,
        method=method.name,
        streaming=bool(method.server_streaming),
        request_type=None,
        response_type=None,
        decode=refuse,
        encode=refuse,
        client_streaming=bool(method.client_streaming),
        request_class=message_factory.GetMessageClass(method.input_type),
        response_class=message_factory.GetMessageClass(method.output_type),
    )


def _bind(
    service: pb_descriptor.ServiceDescriptor,
    method: pb_descriptor.MethodDescriptor,
    streaming_mediator: StreamingRequestMediator | None,
    mediator: RequestMediator | None,
    bindings: Mapping[str, type[Request] | None],
    shared: list[str],
    problems: list[str],
) -> Route | None:
    key = f"{service.full_name}/{method.name}"
    if key in bindings and bindings[key] is None:
        return _unserved(service, method)
    rpc, kind, streaming = f"rpc {key}", _kind(method), bool(method.server_streaming)
    chosen = streaming_mediator if streaming else mediator
    if chosen is None:
        argument = "streaming_mediator" if streaming else "mediator"
        problems.append(f"{rpc} is {kind} but the App has no {argument}: pass App({argument}=...)")
        return None
    other = mediator if streaming else streaming_mediator
    request_type = _request_type(service, method, chosen, other, bindings.get(key), shared, problems)
    if request_type is None:
        return None
    handler = chosen.request_map.get(request_type)
    if handler is None:
        problems.append(
            f"{rpc} is bound to {request_type.__qualname__}, which has no handler in the {_of(chosen)}"
        )
        return None
    problem = _handler_problem(method, handler)
    if problem:
        problems.append(f"{rpc} is {kind} but {problem}")
        return None
    response_type = handler_types(handler)[1]
    if response_type is None:
        problems.append(
            f"{rpc}: cannot tell the Response class of {handler.__qualname__}; "
            f"declare it as a generic argument, e.g. {_HANDLER_BASE[kind]}[Command, Result]"
        )
        return None
    field_problems = check_fields(method.input_type, request_type, where=f"{rpc} request") + check_fields(
        method.output_type, response_type, where=f"{rpc} response"
    )
    if field_problems:
        problems.extend(field_problems)
        return None
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    return Route(
        service=service.full_name,
        method=method.name,
        streaming=streaming,
        request_type=request_type,
        response_type=response_type,
        decode=compile_decoder(request_class, request_type),
        encode=compile_encoder(response_type, response_class),
        client_streaming=bool(method.client_streaming),
        request_class=request_class,
        response_class=response_class,
    )


def _of(mediator: StreamingRequestMediator | RequestMediator) -> str:
    streaming = isinstance(mediator, StreamingRequestMediator)
    return "bootstrap_streaming(...) mediator" if streaming else "bootstrap(...) mediator"


def _request_type(
    service: pb_descriptor.ServiceDescriptor,
    method: pb_descriptor.MethodDescriptor,
    chosen: StreamingRequestMediator | RequestMediator,
    other: StreamingRequestMediator | RequestMediator | None,
    bound: type[Request] | None,
    shared: list[str],
    problems: list[str],
) -> type[Request] | None:
    """The Request class that serves ``method``: the explicit binding, else the one bound class named
    as its input message, unless that message is shared with other RPCs."""
    if bound is not None:
        return bound
    rpc, name = f"rpc {service.full_name}/{method.name}", method.input_type.name
    if shared:
        also = ", ".join(f"rpc {key}" for key in shared)
        problems.append(
            f"{rpc} takes {method.input_type.full_name}, as {also} also "
            f"take{'s' if len(shared) == 1 else ''}: an RPC whose input is shared is bound only "
            f"explicitly; {_naming_fix(service, method)}"
        )
        return None
    named = [c for c, _ in chosen.request_map.items() if c.__name__ == name]
    if len(named) > 1:
        names = ", ".join(f"{c.__module__}.{c.__qualname__}" for c in named)
        problems.append(
            f"{rpc}: several bound Request classes are named {name} ({names}); pick one with bindings="
        )
        return None
    if named:
        return named[0]
    hint = ""
    if other is not None and any(c.__name__ == name for c, _ in other.request_map.items()):
        hint = f"; {name} is bound to the other mediator, but this RPC needs the {_of(chosen)}"
    bound_names = ", ".join(sorted(c.__name__ for c, _ in chosen.request_map.items())) or "nothing"
    problems.append(
        f"{rpc} has no handler: no Request class named {name} is bound in the {_of(chosen)}{hint} "
        f"(bound: {bound_names}); {_naming_fix(service, method)}"
    )
    return None


def _handler_problem(method: pb_descriptor.MethodDescriptor, handler: type[Any]) -> str:
    """Why ``handler`` cannot serve ``method``'s shape, or ``""``."""
    is_generator = inspect.isasyncgenfunction(getattr(handler, "handle", None))
    if method.server_streaming and not is_generator:
        return f"{handler.__qualname__}.handle is not an async generator (write it with `yield`)"
    if not method.server_streaming and is_generator:
        return f"{handler.__qualname__}.handle is an async generator"
    if takes_request_stream(handler) != bool(method.client_streaming):
        base = _HANDLER_BASE[_kind(method)]
        return f"its handler must subclass cqrs.{base}, and {handler.__qualname__} does not"
    return ""
