"""``python -m server --workers N``: N server processes sharing one port (SO_REUSEPORT).

grpc.aio serves from one event loop in one process, so one process uses at most about one CPU.
The supervisor starts N copies of the same command line (``--workers 1``), each binding the same
address with ``grpc.so_reuseport`` (set through :envvar:`CQRS_GRPC_WORKER_INDEX`); the kernel
spreads incoming *connections* over them. Every worker serves the same App, the same health and
the same reflection answers, so clients and probes see one server whichever worker they reach.

With no ``--nats-url`` (nor :envvar:`CQRS_GRPC_NATS_URL`) the supervisor first starts one local
``nats-server -js`` (store in ``--nats-store``, default ``data/nats``, kept across restarts) on a free
loopback port, gives its URL to every worker in :envvar:`CQRS_GRPC_NATS_URL`, and stops it after the
last worker has exited: an App with a broker publishes to one bus whichever worker serves the RPC.
If that nats-server dies, it is started again on the same port and store (its workers reconnect);
if it cannot be, or keeps dying, the workers are stopped and the supervisor exits 1.
Without a ``nats-server`` binary it warns and the workers run without one.

With ``--metrics-address`` the workers write their metrics to one directory (prometheus-client's
multiprocess mode) and the supervisor alone serves ``/metrics`` there, summed over the workers.

The supervisor forwards SIGTERM/SIGINT to every worker (each drains gracefully), and exits when
they have all exited: 0 if every worker exited 0, else the first failing code. If one worker dies
on its own, the others are stopped too, so a process manager sees the failure and restarts all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cqrs.bus.server import NatsServer

logger = logging.getLogger("server")

WORKER_ENV = "CQRS_GRPC_WORKER_INDEX"
NATS_URL_ENV = "CQRS_GRPC_NATS_URL"
_FORWARDED = (signal.SIGTERM, signal.SIGINT)


def is_worker() -> bool:
    """True in a process the supervisor started (it must bind its port with SO_REUSEPORT)."""
    return WORKER_ENV in os.environ


def supervise(
    argv: Sequence[str],
    workers: int,
    address: str,
    *,
    nats_url: str | None,
    nats_store: str,
    metrics_address: str | None = None,
) -> int:
    """Run ``python -m server *argv`` ``workers`` times on ``address``; return the exit code.

    With no ``nats_url`` a local nats-server (store in ``nats_store``) serves the workers' bus; with a
    ``metrics_address`` the supervisor serves the workers' metrics there."""
    host, _, port_text = address.rpartition(":")
    port = int(port_text)
    with (
        _reserved_port(host, port) as port,
        _local_bus(nats_url, nats_store) as (bus_env, bus),
        _metrics(metrics_address) as metrics_env,
    ):
        worker_address = f"{host}:{port}"
        command = [sys.executable, "-m", "server", *argv, "--workers", "1", "--address", worker_address]
        children: list[subprocess.Popen[bytes]] = []
        stopping = False

        def forward(signum: int, _frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True
            for child in children:
                if child.poll() is None:
                    child.send_signal(signum)

        previous = {signum: signal.signal(signum, forward) for signum in _FORWARDED}
        try:
            for index in range(workers):
                env = {
                    **os.environ,
                    **bus_env,
                    **metrics_env,
                    WORKER_ENV: str(index),
                    "CQRS_GRPC_WORKERS": "1",
                }
                # Own process group: a terminal's Ctrl-C reaches the supervisor only, which forwards it
                # once (a second SIGINT during a worker's drain would interrupt it).
                children.append(subprocess.Popen(command, env=env, process_group=0))
            logger.info(
                "supervising workers=%d pids=%s address=%s",
                workers,
                ",".join(str(c.pid) for c in children),
                worker_address,
            )
            return _wait(
                children,
                lambda: stopping,
                on_exit=lambda pid: _worker_exited(pid, metrics_env),
                check=_KeepBusUp(bus) if bus is not None else lambda: True,
            )
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _wait(
    children: list[subprocess.Popen[bytes]],
    stopping: Callable[[], bool],
    on_exit: Callable[[int], None] = lambda _pid: None,
    check: Callable[[], bool] = lambda: True,
) -> int:
    """Wait for every child; stop the rest when one exits before a signal asked them to, or when
    ``check()`` turns False (then the exit code is 1 at least)."""
    codes: dict[int, int] = {}
    failed_check = False
    while len(codes) < len(children):
        if not failed_check and not check():
            failed_check = True
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
        for child in children:
            code = child.poll()
            if code is None or child.pid in codes:
                continue
            codes[child.pid] = code
            logger.info("worker pid=%d exited code=%d", child.pid, code)
            on_exit(child.pid)
            if not stopping() and len(codes) < len(children):
                logger.error("worker pid=%d exited on its own: stopping the other workers", child.pid)
                for other in children:
                    if other.poll() is None:
                        other.send_signal(signal.SIGTERM)
        time.sleep(0.05)
    failed = [code for code in codes.values() if code != 0]
    return failed[0] if failed else int(failed_check)


MAX_BUS_RESTARTS = 3
BUS_RESTART_WINDOW = 60.0


class _KeepBusUp:
    """A ``check`` of :func:`_wait`: starts the workers' nats-server again (same port, same store) when
    it died; False when it cannot, or when it died more than ``MAX_BUS_RESTARTS`` times within
    ``BUS_RESTART_WINDOW`` seconds."""

    def __init__(self, bus: NatsServer) -> None:
        self.bus = bus
        self.restarts: list[float] = []

    def __call__(self) -> bool:
        if self.bus.running:
            return True
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < BUS_RESTART_WINDOW] + [now]
        logger.error("event bus nats-server exited on its own (code %s)", self.bus.returncode)
        if len(self.restarts) > MAX_BUS_RESTARTS:
            logger.error("event bus nats-server keeps exiting: stopping the workers")
            return False
        try:
            self.bus.start()
        except (OSError, RuntimeError) as exc:
            logger.error("cannot start the workers' event bus again: %s; stopping the workers", exc)
            return False
        _log_bus(self.bus)
        return True


def _log_bus(bus: NatsServer) -> None:
    logger.info("event bus nats-server pid=%s url=%s store=%s", bus.pid, bus.url, bus.store_dir)


@contextlib.contextmanager
def _local_bus(nats_url: str | None, store: str) -> Iterator[tuple[dict[str, str], NatsServer | None]]:
    """The workers' environment for the bus and the nats-server started here (stopped when the block
    ends); nothing when a URL is configured."""
    if nats_url is not None:
        yield {}, None
        return
    from cqrs.bus.server import NatsServer  # the bus extra: imported only when it is used

    try:
        server = NatsServer(Path(store))
    except FileNotFoundError as exc:
        logger.warning("no event bus for the workers: %s", exc)
        yield {}, None
        return
    try:
        server.start()
    except (OSError, RuntimeError) as exc:  # TimeoutError is an OSError
        logger.error("cannot start the workers' event bus: %s", exc)
        raise SystemExit(2) from None
    _log_bus(server)
    try:
        yield {NATS_URL_ENV: server.url}, server
    finally:
        server.stop()
        logger.info("event bus nats-server stopped url=%s", server.url)


@contextlib.contextmanager
def _metrics(address: str | None) -> Iterator[dict[str, str]]:
    """The workers' environment for their metrics, and ``/metrics`` served here, summed over them."""
    if address is None:
        yield {}
        return
    from server import metrics  # the observability extra: imported only when it is used

    with metrics.supervised(address) as env:
        logger.info("metrics of every worker served address=%s", address)
        yield env


def _worker_exited(pid: int, metrics_env: dict[str, str]) -> None:
    if metrics_env:
        from server import metrics

        metrics.worker_exited(pid, metrics_env)


@contextlib.contextmanager
def _reserved_port(host: str, port: int) -> Iterator[int]:
    """Port 0 means "any free port": pick one and hold it (bound, not listening) while workers run.

    The holding socket has SO_REUSEPORT too, so the workers can bind beside it; it never listens,
    so it never takes a connection.
    """
    if port != 0:
        yield port
        return
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((host.strip("[]"), 0))
        yield int(holder.getsockname()[1])
