"""``python -m server``: serve an App until SIGTERM/SIGINT, then drain gracefully.

Every flag has an environment variable (``CQRS_GRPC_<FLAG>``) so containers and process
managers can configure the server without a wrapper script; a flag wins over its variable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence

from server.app import App
from server.observability import configure_logging
from server.routing import StartupError
from server.settings import ServerSettings

logger = logging.getLogger("server")

DEFAULT_APP = "server.demo:create_app"
ENV_PREFIX = "CQRS_GRPC_"


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name, default)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="Serve the RPCs of an App's protos through its CQRS mediators.",
        epilog=f"Every flag can also be set with an environment variable {ENV_PREFIX}<FLAG> "
        f"(e.g. {ENV_PREFIX}ADDRESS, {ENV_PREFIX}GRACE); the flag wins.",
    )
    parser.add_argument(
        "--app",
        default=_env("APP", DEFAULT_APP),
        help="module:attribute of an App, or of a (possibly async) function returning one "
        f"[env {ENV_PREFIX}APP; default: the demo, {DEFAULT_APP}]",
    )
    parser.add_argument(
        "--address",
        default=_env("ADDRESS", "127.0.0.1:50051"),
        help=f"host:port to listen on (port 0: any free one) [env {ENV_PREFIX}ADDRESS; default %(default)s]",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=float(_env("GRACE", "10")),
        help=f"seconds in-flight RPCs may run on after SIGTERM [env {ENV_PREFIX}GRACE; default 10]",
    )
    parser.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help=f"[env {ENV_PREFIX}LOG_LEVEL; default info]",
    )
    parser.add_argument(
        "--log-format",
        default=_env("LOG_FORMAT", "text"),
        choices=["text", "json"],
        help=f"text for people, json for log pipelines [env {ENV_PREFIX}LOG_FORMAT; default text]",
    )
    return parser.parse_args(argv)


async def load_app(target: str) -> App:
    """Import ``module:attribute``; call it if it is a factory, await it if it is async."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"--app must look like package.module:attribute, got {target!r}")
    module = importlib.import_module(module_name)
    try:
        obj = getattr(module, attribute)
    except AttributeError:
        raise SystemExit(f"--app {target}: module {module_name} has no attribute {attribute!r}") from None
    if not isinstance(obj, App) and callable(obj):
        obj = obj()
        if inspect.isawaitable(obj):
            obj = await obj
    if not isinstance(obj, App):
        raise SystemExit(f"--app {target} gave {type(obj).__name__}, not a server.App")
    return obj


async def serve(args: argparse.Namespace) -> None:
    app = await load_app(args.app)
    app.settings = _with_grace(app, args.grace)
    running = await app.start(args.address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await running.stop()


def _with_grace(app: App, grace: float) -> ServerSettings:
    return dataclasses.replace(app.settings, grace=grace)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        with _event_loop() as runner:
            runner.run(serve(args))
    except StartupError as exc:
        logger.error("%s", exc)
        return 2
    except OSError as exc:
        logger.error("cannot serve: %s", exc)
        return 2
    return 0


@contextlib.contextmanager
def _event_loop() -> Iterator[asyncio.Runner]:
    """An asyncio runner on uvloop when it is installed (faster I/O), the default loop otherwise."""
    factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        yield runner


if __name__ == "__main__":
    sys.exit(main())
