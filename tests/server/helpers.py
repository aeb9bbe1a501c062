"""Builders of small apps around one test handler, and readers of rich error details."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from sample.files.v1 import files_pb2

import cqrs
from cqrs.requests import bootstrap
from server import App
from tests.server.sample import GetFileStatusQuery, GetFileStatusQueryHandler, ProcessFilesCommand


def app_with(
    stream_handler: type[Any],
    *,
    unary_handler: type[Any] = GetFileStatusQueryHandler,
    events: Iterable[tuple[type[Any], type[Any]]] = (),
    container: cqrs.Container | None = None,
    **stream_settings: Any,
) -> App:
    """An App serving sample.files.v1 (the test-only seed service) with ``stream_handler`` behind ProcessFiles."""
    container = container or cqrs.Container()
    event_bindings = list(events)

    def bind_events(mapper: Any) -> None:
        for event_type, handler in event_bindings:
            mapper.bind(event_type, handler)

    stream_mediator = bootstrap.bootstrap_streaming(
        di_container=container,
        commands_mapper=lambda m: m.bind(ProcessFilesCommand, stream_handler),
        domain_events_mapper=bind_events,
        **stream_settings,
    )
    mediator = bootstrap.bootstrap(
        di_container=container,
        queries_mapper=lambda m: m.bind(GetFileStatusQuery, unary_handler),
    )
    app = App(streaming_mediator=stream_mediator, mediator=mediator)
    app.add_services(files_pb2)
    return app


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    """The google.rpc.Status sent in grpc-status-details-bin (fails the test if absent)."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError(f"no grpc-status-details-bin trailer in {error.trailing_metadata()!r}")


def error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo:
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError("no ErrorInfo in the status details")


def bad_request(status: status_pb2.Status) -> error_details_pb2.BadRequest:
    for detail in status.details:
        request = error_details_pb2.BadRequest()
        if detail.Unpack(request):
            return request
    raise AssertionError("no BadRequest in the status details")


def trailer(error: grpc.aio.AioRpcError, key: str) -> str | bytes | None:
    for name, value in error.trailing_metadata() or ():
        if name == key:
            return value
    return None


# --- nothing internal on the wire -------------------------------------------------------------------

_INTERNAL = {
    "traceback": re.compile(r"Traceback|File \"|line \d+, in "),
    "exception class": re.compile(r"\b[A-Z]\w*(Error|Exception|Exit|Interrupt)\b|<class '"),
    "file system path": re.compile(r"(^|[\s'\"(=:])/[\w.-]+/[\w./-]*|\.py\b|[A-Z]:\\\\"),
    "library version": re.compile(r"(grpc|python|protobuf|cqrs|upb|uvloop)[\w./-]*[ /-]v?\d+\.\d+", re.I),
}


def wire_texts(details: str | None, trailers: Iterable[tuple[str, str | bytes]]) -> list[str]:
    """Every text a client receives with a failed call: the status message and each trailer value
    (``grpc-status-details-bin`` decoded: its message and every ErrorInfo / BadRequest string)."""
    texts = [details or ""]
    for key, value in trailers:
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            texts.append(status.message)
            for detail in status.details:
                info, request = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
                if detail.Unpack(info):
                    texts += [info.reason, info.domain, *info.metadata.keys(), *info.metadata.values()]
                elif detail.Unpack(request):
                    texts += [t for v in request.field_violations for t in (v.field, v.description)]
                else:
                    texts.append(detail.type_url)
        else:
            texts += [key, value.decode("latin-1") if isinstance(value, bytes) else value]
    return texts


def internal_leaks(texts: Iterable[str]) -> list[str]:
    """``kind: text`` for each text that shows a traceback, class name, path or library version."""
    return [f"{kind}: {text!r}" for text in texts for kind, rx in _INTERNAL.items() if rx.search(text)]


def assert_nothing_internal(errors: Iterable[grpc.RpcError]) -> None:
    leaks = [
        leak
        for error in errors
        for leak in internal_leaks(
            wire_texts(error.details(), error.trailing_metadata() or ())  # type: ignore[attr-defined]
        )
    ]
    assert not leaks, "internal details on the wire:\n" + "\n".join(leaks)
