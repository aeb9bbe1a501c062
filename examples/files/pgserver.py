"""Running a throwaway PostgreSQL server (tests and benchmarks): ``initdb`` + ``pg_ctl`` in a directory.

The binaries are Debian's (``/usr/lib/postgresql/<version>/bin``, newest first) or the first on ``PATH``.
``initdb`` refuses to run as root, so as root the server runs as the unprivileged ``postgres`` user
the package creates (through ``runuser``); otherwise as the current user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresServer", "find_pg_bin"]

SUPERUSER = "postgres"
DATABASE = "postgres"


def find_pg_bin() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``; ``FileNotFoundError`` says how to get them."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True):
        if (Path(folder) / "initdb").is_file():
            return Path(folder)
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise FileNotFoundError(
        "no initdb: `make install` installs Debian's postgresql (apt-get install postgresql)"
    )


def _version(folder: str) -> int:
    digits = Path(folder).parent.name
    return int(digits) if digits.isdigit() else 0


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A PostgreSQL cluster in ``data_dir`` listening on ``host:port`` only (no Unix socket in /run):
    start, stop, restart on the same port and data (what it stored survives a restart).

    As root, ``data_dir`` is handed to the ``postgres`` user: its parent folders must let that user
    through (a ``tempfile.mkdtemp()`` folder in ``/tmp`` does)."""

    def __init__(self, data_dir: str | Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.base = Path(data_dir)
        self.host = host
        self.port = port if port is not None else _free_port(host)
        self.bin = find_pg_bin()
        self._pgdata = self.base / "pgdata"
        self._log = self.base / "postgres.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", SUPERUSER, "--"]

    def url(self, database: str = DATABASE) -> str:
        """``postgresql://postgres@host:port/<database>`` (local trust authentication, no password)."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    @property
    def running(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.2):
            return True
        return False

    def _run(self, *args: str, timeout: float) -> None:
        command = [*self._as_user, str(self.bin / args[0]), *args[1:]]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout}")

    def _prepare(self, timeout: float) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if self._as_user:
            user = pwd.getpwnam(SUPERUSER)
            os.chown(self.base, user.pw_uid, user.pw_gid)
            self.base.chmod(0o700)
        if not (self._pgdata / "PG_VERSION").exists():
            self._run(
                "initdb", "-D", str(self._pgdata), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                "--no-sync", timeout=timeout,
            )  # fmt: skip

    def start(self, timeout: float = 30.0) -> None:
        """Initialise the cluster if new, start it, and return once it accepts connections."""
        if self.running:
            return
        self._prepare(timeout)
        options = f"-h {self.host} -p {self.port} -k '' -c fsync=off -c max_connections=200"
        self._run(
            "pg_ctl", "-D", str(self._pgdata), "-l", str(self._log), "-o", options, "-w",
            "-t", str(int(timeout)), "start", timeout=timeout + 5,
        )  # fmt: skip

    def stop(self, timeout: float = 15.0, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions; ``immediate``: like a crash)."""
        if not (self._pgdata / "postmaster.pid").exists():
            return
        self._run(
            "pg_ctl", "-D", str(self._pgdata), "-m", mode, "-w", "-t", str(int(timeout)), "stop",
            timeout=timeout + 5,
        )  # fmt: skip

    def restart(self, timeout: float = 30.0) -> None:
        """Stop, then start again on the same port with the same data."""
        self.stop()
        self.start(timeout)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
