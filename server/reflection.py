"""gRPC server reflection, served as both ``grpc.reflection.v1`` and ``grpc.reflection.v1alpha``.

grpcurl and ``buf curl`` ask ``v1`` first and fall back to ``v1alpha``; grpcio-reflection ships only
``v1alpha``. The two protos differ only in their package name (same messages, same field numbers), so one
servicer answers both, (de)serializing with the generated ``v1alpha`` messages.

Why not grpcio-reflection's own servicer: besides lacking v1, it cannot resolve a method name
(``pkg.Service.Method``, which the protocol allows and the upb descriptor pool does not look up), it resends
every dependency on every request, and its aio servicer lives in a private module.

Clients also ask for the file defining ``grpc.reflection.v1.ServerReflection`` itself (``buf curl
--list-methods`` does), which no generated module provides. We derive it from the v1alpha descriptor and keep
it in a private pool, so that a real ``grpc/reflection/v1/reflection.proto`` imported later cannot collide
with it in the default pool.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterable, Iterable
from typing import Any

import grpc
import grpc.aio
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection_pb2

__all__ = ["SERVICE_NAMES", "V1", "V1ALPHA", "Reflection", "enable_reflection"]

V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
V1 = "grpc.reflection.v1.ServerReflection"
SERVICE_NAMES = (V1, V1ALPHA)

_log = logging.getLogger(__name__)


def _v1_file() -> descriptor_pb2.FileDescriptorProto:
    """``grpc/reflection/v1/reflection.proto``, derived from the generated v1alpha file (package renamed)."""
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = "grpc.reflection.v1alpha", "grpc.reflection.v1"
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = new
    proto.options.java_package = "io.grpc.reflection.v1"
    proto.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    proto.options.ClearField("deprecated")
    for message in proto.message_type:
        for fld in message.field:
            if fld.type_name:
                fld.type_name = fld.type_name.replace(f".{old}.", f".{new}.")
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(f".{old}.", f".{new}.")
            method.output_type = method.output_type.replace(f".{old}.", f".{new}.")
    return proto


class _Lookup:
    """Finds files in the application's pool, then in a private pool holding the v1 reflection file."""

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._pool = pool
        self._own = descriptor_pool.DescriptorPool()
        self._own.Add(_v1_file())

    def _pools(self) -> tuple[descriptor_pool.DescriptorPool, ...]:
        return (self._pool, self._own)

    def file_by_name(self, name: str) -> FileDescriptor:
        for pool in self._pools():
            try:
                return pool.FindFileByName(name)
            except KeyError:
                continue
        raise KeyError(name)

    def file_containing_symbol(self, symbol: str) -> FileDescriptor:
        symbol = symbol.lstrip(".")
        parent, _, member = symbol.rpartition(".")
        for pool in self._pools():
            try:
                return pool.FindFileContainingSymbol(symbol)
            except KeyError:
                pass
            # A method ("pkg.Service.Method"): the protocol allows it, the upb pool does not resolve it.
            try:
                service = pool.FindServiceByName(parent)
            except KeyError:
                continue
            if member in service.methods_by_name:
                return service.file
        raise KeyError(symbol)

    def file_containing_extension(self, containing_type: str, number: int) -> FileDescriptor:
        for pool in self._pools():
            try:
                message = pool.FindMessageTypeByName(containing_type.lstrip("."))
                extension = pool.FindExtensionByNumber(message, number)
                return pool.FindFileContainingSymbol(extension.full_name)
            except KeyError:
                continue
        raise KeyError(f"{containing_type}({number})")

    def extension_numbers(self, containing_type: str) -> tuple[str, list[int]]:
        for pool in self._pools():
            try:
                message = pool.FindMessageTypeByName(containing_type.lstrip("."))
            except KeyError:
                continue
            return message.full_name, sorted(ext.number for ext in pool.FindAllExtensions(message))
        raise KeyError(containing_type)


class Reflection:
    """Serves server reflection (v1 and v1alpha) for the services named by the caller.

    ``service_names`` are the fully-qualified names to list (the application's services, health...); the two
    reflection services are always added. Files are looked up in ``pool`` (the default descriptor pool, where
    every generated ``*_pb2`` module registers itself).
    """

    def __init__(
        self,
        service_names: Iterable[str],
        *,
        pool: descriptor_pool.DescriptorPool | None = None,
    ) -> None:
        self._service_names = tuple(sorted({*service_names, *SERVICE_NAMES}))
        self._lookup = _Lookup(pool if pool is not None else descriptor_pool.Default())

    @property
    def service_names(self) -> tuple[str, ...]:
        """What ``list_services`` answers, sorted."""
        return self._service_names

    def register(self, server: grpc.aio.Server) -> None:
        """Add both reflection services to ``server`` (before it starts)."""
        for name in SERVICE_NAMES:
            handler = grpc.stream_stream_rpc_method_handler(
                self._rpc_info,  # decodes each request itself: see there
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
            server.add_generic_rpc_handlers(
                [grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler})]
            )

    async def _rpc_info(
        self, requests: AsyncIterable[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        sent: set[str] = set()  # files already sent on this stream; the protocol lets us skip them
        async for raw in requests:
            # Decoded here, not by grpc: its failure would send the DecodeError's class and text.
            try:
                request = reflection_pb2.ServerReflectionRequest.FromString(raw)
            except Exception:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the request is not a valid message")
            await context.write(self.answer(request, sent))

    def answer(self, request: Any, sent: set[str] | None = None) -> Any:
        """The ``ServerReflectionResponse`` to one ``ServerReflectionRequest`` (public for tests and tools).

        ``sent`` holds the names of files already sent on the stream; it is updated.
        """
        sent = set() if sent is None else sent
        kind = request.WhichOneof("message_request")
        try:
            if kind == "list_services":
                return self._response(
                    request,
                    list_services_response=reflection_pb2.ListServiceResponse(
                        service=[reflection_pb2.ServiceResponse(name=n) for n in self._service_names]
                    ),
                )
            if kind == "file_by_filename":
                found = self._lookup.file_by_name(request.file_by_filename)
            elif kind == "file_containing_symbol":
                found = self._lookup.file_containing_symbol(request.file_containing_symbol)
            elif kind == "file_containing_extension":
                ext = request.file_containing_extension
                found = self._lookup.file_containing_extension(ext.containing_type, ext.extension_number)
            elif kind == "all_extension_numbers_of_type":
                base, numbers = self._lookup.extension_numbers(request.all_extension_numbers_of_type)
                return self._response(
                    request,
                    all_extension_numbers_response=reflection_pb2.ExtensionNumberResponse(
                        base_type_name=base, extension_number=numbers
                    ),
                )
            else:
                return self._error(
                    request, grpc.StatusCode.INVALID_ARGUMENT, "the request sets no message_request"
                )
        except KeyError:
            return self._error(
                request, grpc.StatusCode.NOT_FOUND, f"{kind} {_subject(request, kind)!r} not found"
            )
        return self._response(
            request,
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                file_descriptor_proto=_with_dependencies(found, sent)
            ),
        )

    @staticmethod
    def _response(request: Any, **answer: Any) -> Any:
        return reflection_pb2.ServerReflectionResponse(
            valid_host=request.host, original_request=request, **answer
        )

    @classmethod
    def _error(cls, request: Any, code: grpc.StatusCode, message: str) -> Any:
        number: int = code.value[0]
        error = reflection_pb2.ErrorResponse(error_code=number, error_message=message)
        return cls._response(request, error_response=error)


def _subject(request: Any, kind: str) -> str:
    if kind == "file_containing_extension":
        ext = request.file_containing_extension
        return f"{ext.containing_type}({ext.extension_number})"
    return str(getattr(request, kind))


def _with_dependencies(file: FileDescriptor, sent: set[str]) -> list[bytes]:
    """The requested file first, always, then its transitive imports not yet sent on this stream.

    The same choice as grpc-go: a client that asked for a file gets it, and a client that already holds an
    import (``google/protobuf/timestamp.proto``...) does not receive it again.
    """
    out = [file.serialized_pb]
    sent.add(file.name)
    queue = deque(file.dependencies)
    while queue:
        dependency = queue.popleft()
        if dependency.name in sent:
            continue
        sent.add(dependency.name)
        out.append(dependency.serialized_pb)
        queue.extend(dependency.dependencies)
    return out


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> Reflection:
    """Serve reflection (v1 and v1alpha) on ``server`` for ``service_names``: the usual one-liner."""
    reflection = Reflection(service_names)
    reflection.register(server)
    return reflection
