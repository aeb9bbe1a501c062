"""cqrs-grpc's server: every RPC of your protos served by a CQRS mediator.

Public surface: ``App`` (bind protos to mediators, serve), ``RunningServer``,
``StartupError``, ``ServerSettings``, ``ErrorMapper``, ``Status`` (raise it to end an RPC
with a status of the handler's choosing), the per-RPC context
(``current_rpc``, ``maybe_current_rpc``, ``RpcContext``) and ``new_event_loop`` (the loop
``python -m server`` serves on, for apps started from your own program). Test helpers live in
``server.testing``.

Names are imported on first use so that ``import server.codec`` (or a handler module that
only needs ``current_rpc``) does not pull in the whole server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.accel import new_event_loop
    from server.app import App, RunningServer
    from server.context import RpcContext, current_rpc, maybe_current_rpc
    from server.errors import ErrorMapper, Status
    from server.routing import StartupError
    from server.settings import ServerSettings

_EXPORTS = {
    "App": "server.app",
    "RunningServer": "server.app",
    "RpcContext": "server.context",
    "current_rpc": "server.context",
    "maybe_current_rpc": "server.context",
    "ErrorMapper": "server.errors",
    "Status": "server.errors",
    "new_event_loop": "server.accel",
    "StartupError": "server.routing",
    "ServerSettings": "server.settings",
}

__all__ = [
    "App",
    "ErrorMapper",
    "RpcContext",
    "RunningServer",
    "ServerSettings",
    "StartupError",
    "Status",
    "current_rpc",
    "maybe_current_rpc",
    "new_event_loop",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'server' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
