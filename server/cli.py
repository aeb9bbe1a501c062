"""``python -m server``: serve an App until SIGTERM/SIGINT, then drain gracefully.

Every flag has an environment variable (``CQRS_GRPC_<FLAG>``) so containers and process
managers can configure the server without a wrapper script; a flag wins over its variable.
``--app`` is required: the CLI serves no app of its own, and an app reads its own settings.
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

from cqrs.errors import UnavailableError
from server import accel, workers
from server.app import App, RunningServer
from server.observability import configure_logging
from server.routing import StartupError
from server.settings import COMPRESSIONS, ServerSettings, check_nats_url, split_host_port

logger = logging.getLogger("server")

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
        default=os.environ.get(ENV_PREFIX + "APP") or None,
        help="module:attribute of an App, or of a (possibly async) function returning one; "
        f"required [env {ENV_PREFIX}APP]",
    )
    parser.add_argument(
        "--address",
        default=_env("ADDRESS", "127.0.0.1:50051"),
        help=f"host:port to listen on (port 0: any free one) [env {ENV_PREFIX}ADDRESS; default %(default)s]",
    )
    _setting(parser, "--grace", float, "seconds in-flight RPCs may run on after SIGTERM/SIGINT (default 10)")
    _setting(
        parser,
        "--max-concurrent-streams",
        int,
        "application streams served at once; more get RESOURCE_EXHAUSTED at once (default: no limit)",
    )
    _setting(
        parser, "--keepalive-time", float, "seconds between keepalive pings on a connection (default 60)"
    )
    _setting(
        parser, "--keepalive-timeout", float, "seconds to wait for a ping answer before dropping (default 20)"
    )
    _setting(parser, "--max-receive-bytes", int, "largest request message accepted (default 4 MiB)")
    _setting(parser, "--max-send-bytes", int, "largest response message sent (default 16 MiB)")
    _setting(
        parser,
        "--max-metadata-bytes",
        int,
        "largest request metadata (headers) accepted; more is refused (default 16 KiB)",
    )
    _setting(parser, "--tls-cert", str, "PEM certificate chain: with --tls-key the server speaks TLS only")
    _setting(parser, "--tls-key", str, "PEM private key of --tls-cert (unencrypted)")
    _setting(
        parser,
        "--tls-client-ca",
        str,
        "PEM CA bundle: clients must present a certificate it signed (mutual TLS)",
    )
    _setting(
        parser,
        "--auth-tokens-file",
        str,
        "bearer tokens, one per line: TOKEN [NAME [METHOD,...]]; every RPC but health and "
        "reflection then needs 'authorization: Bearer <token>'",
    )
    _setting(
        parser,
        "--nats-url",
        str,
        "NATS server(s) of the event bus, nats://host:port: an App given a broker connects it there "
        "at start (default: the broker's own URL; with --workers N > 1, a local nats-server the "
        "supervisor starts)",
    )
    _setting(
        parser,
        "--metrics-address",
        str,
        "HOST:PORT to serve Prometheus metrics on at /metrics (port 0: any free one); with --workers N "
        "the supervisor serves every worker's series there (default: no metrics)",
    )
    parser.add_argument(
        "--database",
        default=_env("DATABASE", "") or None,
        help="a database URL (e.g. postgresql://user@host:5432/db) given to the --app factory as its "
        f"`database` argument; the server itself opens nothing [env {ENV_PREFIX}DATABASE]",
    )
    parser.add_argument(
        "--nats-store",
        default=_env("NATS_STORE", "data/nats"),
        help="with --workers N > 1 and no --nats-url: the JetStream store of the local nats-server "
        f"[env {ENV_PREFIX}NATS_STORE; default %(default)s]",
    )
    _setting(
        parser,
        "--http-address",
        str,
        "host:port of an HTTP port serving the same RPCs to browsers: gRPC-Web, Connect and SSE "
        "(docs/web.md; default: none)",
    )
    cors_env = ENV_PREFIX + "HTTP_CORS_ORIGIN"
    parser.add_argument(
        "--http-cors-origin",
        dest="http_cors_origins",
        action="append",
        default=None,
        help="an origin (https://app.example.com) whose pages may call the HTTP port; repeatable "
        f"[env {cors_env}, comma-separated]",
    )
    _switch(parser, "--no-reflection", "reflection", False, "do not serve server reflection")
    _switch(
        parser,
        "--reflection-requires-auth",
        "reflection_requires_auth",
        True,
        "reflection needs a token too (with --auth-tokens-file)",
    )
    _switch(
        parser,
        "--health-requires-auth",
        "health_requires_auth",
        True,
        "health checks need a token too (with --auth-tokens-file)",
    )
    parser.add_argument(
        "--compression",
        default=os.environ.get(ENV_PREFIX + "COMPRESSION") or None,
        choices=list(COMPRESSIONS),
        help="how responses are compressed unless a handler chooses (default none) "
        f"[env {ENV_PREFIX}COMPRESSION]",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", "1")),
        help="server processes sharing the address with SO_REUSEPORT, under one supervisor "
        f"[env {ENV_PREFIX}WORKERS; default 1]",
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
    args = parser.parse_args(argv)
    if args.http_cors_origins is None and os.environ.get(cors_env):
        args.http_cors_origins = [o.strip() for o in os.environ[cors_env].split(",") if o.strip()]
    if args.http_cors_origins is not None:
        args.http_cors_origins = tuple(args.http_cors_origins)
    if args.nats_url is not None:
        try:
            check_nats_url(args.nats_url)
        except ValueError as exc:
            parser.error(f"--nats-url ({ENV_PREFIX}NATS_URL): {exc}")
    if args.metrics_address is not None:
        try:
            split_host_port(args.metrics_address)
        except ValueError as exc:
            parser.error(f"--metrics-address ({ENV_PREFIX}METRICS_ADDRESS): {exc}")
    # argparse checks choices of given flags only, not of defaults taken from the environment
    if args.compression is not None and args.compression not in COMPRESSIONS:
        choices = ", ".join(COMPRESSIONS)
        parser.error(f"{ENV_PREFIX}COMPRESSION must be one of {choices}, got {args.compression!r}")
    if not args.app:
        parser.exit(
            2,
            f"{parser.prog}: error: --app (or {ENV_PREFIX}APP) is required: module:attribute of the App "
            "to serve, e.g. --app mypackage.mymodule:create_app\n",
        )
    return args


# Flags that override a field of the App's ServerSettings, and the field each one sets.
_SETTINGS_FLAGS = {
    "grace": "grace",
    "max_concurrent_streams": "max_concurrent_streams",
    "keepalive_time": "keepalive_time",
    "keepalive_timeout": "keepalive_timeout",
    "max_receive_bytes": "max_receive_message_bytes",
    "max_send_bytes": "max_send_message_bytes",
    "max_metadata_bytes": "max_metadata_bytes",
    "tls_cert": "tls_cert",
    "tls_key": "tls_key",
    "tls_client_ca": "tls_client_ca",
    "auth_tokens_file": "auth_tokens_file",
    "reflection": "reflection",
    "reflection_requires_auth": "reflection_requires_auth",
    "health_requires_auth": "health_requires_auth",
    "compression": "compression",
    "nats_url": "nats_url",
    "http_address": "http_address",
    "http_cors_origins": "http_cors_origins",
    "metrics_address": "metrics_address",
}


def _setting(parser: argparse.ArgumentParser, flag: str, kind: type, help_text: str) -> None:
    """A flag for a ServerSettings field: unset (and no env) keeps what the App configured."""
    env = ENV_PREFIX + flag.removeprefix("--").replace("-", "_").upper()
    raw = os.environ.get(env)
    parser.add_argument(
        flag, type=kind, default=None if raw is None else kind(raw), help=f"{help_text} [env {env}]"
    )


def _switch(parser: argparse.ArgumentParser, flag: str, field: str, value: bool, help_text: str) -> None:
    """A flag that sets a boolean ServerSettings field to ``value``; its env variable takes 1/true/yes."""
    env = ENV_PREFIX + flag.removeprefix("--").replace("-", "_").upper()
    raw = os.environ.get(env)
    default = None if raw is None else (value if raw.strip().lower() in ("1", "true", "yes", "on") else None)
    parser.add_argument(
        flag,
        dest=field,
        action="store_const",
        const=value,
        default=default,
        help=f"{help_text} [env {env}=1]",
    )


def apply_settings(settings: ServerSettings, args: argparse.Namespace) -> ServerSettings:
    """``settings`` with every settings flag that was given (or set by env) applied."""
    changes = {
        field: getattr(args, flag)
        for flag, field in _SETTINGS_FLAGS.items()
        if getattr(args, flag) is not None
    }
    return dataclasses.replace(settings, **changes)


async def load_app(target: str, database: str | None = None) -> App:
    """Import ``module:attribute``; call it if it is a factory, await it if async.

    The CLI gives an app the ServerSettings flags, applied after it is built, and ``--database`` as the
    factory's ``database`` argument (only then: a factory without that parameter refuses it); an app
    reads its other settings itself (its environment variables, files...).
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"--app must look like package.module:attribute, got {target!r}")
    module = importlib.import_module(module_name)
    try:
        obj = getattr(module, attribute)
    except AttributeError:
        raise SystemExit(f"--app {target}: module {module_name} has no attribute {attribute!r}") from None
    if database is not None and (isinstance(obj, App) or "database" not in _parameters(obj)):
        raise SystemExit(
            f"--app {target} takes no database: --database needs a factory with a `database` parameter"
        )
    if not isinstance(obj, App) and callable(obj):
        obj = obj() if database is None else obj(database=database)
        if inspect.isawaitable(obj):
            obj = await obj
    if not isinstance(obj, App):
        raise SystemExit(f"--app {target} gave {type(obj).__name__}, not a server.App")
    return obj


def _parameters(obj: object) -> set[str]:
    try:
        return set(inspect.signature(obj).parameters)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return set()


@contextlib.contextmanager
def _nats_url_in_env(nats_url: str | None) -> Iterator[None]:
    """While the app is built, ``CQRS_GRPC_NATS_URL`` holds the URL ``--nats-url`` gave: where an app
    that makes its own bus clients finds it (the supervisor of ``--workers`` sets it the same way)."""
    name = ENV_PREFIX + "NATS_URL"
    before = os.environ.get(name)
    if nats_url is not None:
        os.environ[name] = nats_url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


async def serve(args: argparse.Namespace) -> None:
    with _nats_url_in_env(args.nats_url):
        app = await load_app(args.app, args.database)
    app.settings = apply_settings(app.settings, args)
    if workers.is_worker():
        app.settings = dataclasses.replace(app.settings, reuse_port=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    started: list[RunningServer] = []
    # Installed before the "serving" line is logged, so a signal sent on seeing it is never lost.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # SIGHUP: new certificate / tokens without a restart (open connections and streams go on).
    loop.add_signal_handler(signal.SIGHUP, lambda: [running.reload() for running in started])
    try:
        running = await app.start(args.address)
    except BaseException:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        raise
    started.append(running)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        await running.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    if args.workers < 1:
        raise SystemExit(f"--workers must be at least 1, got {args.workers}")
    if args.workers > 1:
        return workers.supervise(
            sys.argv[1:] if argv is None else argv,
            args.workers,
            args.address,
            nats_url=args.nats_url,
            nats_store=args.nats_store,
            metrics_address=args.metrics_address,
        )
    try:
        with _event_loop() as runner:
            runner.run(serve(args))
    except StartupError as exc:
        logger.error("%s", exc)
        return 2
    except OSError as exc:
        logger.error("cannot serve: %s", exc)
        return 2
    except UnavailableError as exc:
        logger.error(
            "cannot serve: %s (is nats-server running there? --nats-url / %sNATS_URL)", exc, ENV_PREFIX
        )
        return 2
    return 0


@contextlib.contextmanager
def _event_loop() -> Iterator[asyncio.Runner]:
    """An asyncio runner on the loop ``server.accel`` makes: uvloop when it is installed."""
    with asyncio.Runner(loop_factory=accel.new_event_loop) as runner:
        yield runner


if __name__ == "__main__":
    sys.exit(main())
