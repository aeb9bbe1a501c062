"""One structured log line per RPC, and the formatters that render it.

A JSON line written while a span is current (tracing on, docs/observability.md) carries its
``trace_id`` and ``span_id``, so logs and traces join.

Only facts about the call are logged — method, status, message count, duration, peer —
never a request or response payload: payloads may carry personal data or secrets, and
logging them per message would also put I/O on the hot path.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import grpc

from server.context import RpcContext

rpc_logger = logging.getLogger("server.rpc")

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class RpcLog:
    """Writes the end-of-RPC line at INFO (failures with a server-side cause at WARNING)."""

    def __init__(self, logger: logging.Logger = rpc_logger) -> None:
        self._logger = logger

    def finished(self, rpc: RpcContext, code: grpc.StatusCode, messages: int) -> None:
        level = logging.WARNING if code in _SERVER_SIDE_FAILURES else logging.INFO
        if not self._logger.isEnabledFor(level):
            return
        duration_ms = round((time.monotonic() - rpc.started_at) * 1000.0, 3)
        peer = rpc.peer
        self._logger.log(
            level,
            "rpc %s status=%s messages=%d duration_ms=%.3f peer=%s",
            rpc.method,
            code.name,
            messages,
            duration_ms,
            peer,
            extra={
                "rpc_method": rpc.method,
                "rpc_status": code.name,
                "rpc_messages": messages,
                "rpc_duration_ms": duration_ms,
                "rpc_peer": peer,
            },
        )


_SERVER_SIDE_FAILURES = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update({key: value for key, value in record.__dict__.items() if key not in _RESERVED})
        tracing = sys.modules.get("opentelemetry.trace")  # imported only once tracing is on
        if tracing is not None:
            span = tracing.get_current_span().get_span_context()
            if span.is_valid:
                payload["trace_id"] = format(span.trace_id, "032x")
                payload["span_id"] = format(span.span_id, "016x")
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str, fmt: str = "text") -> None:
    """Configure the root logger for the CLI: ``text`` (human) or ``json`` (one object a line)."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
