"""Processes of the gRPC benchmark: the servers, the Python client, h2load, py-spy."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench._grpc_gen import GEN

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "bench" / "results" / "tmp" / "logs"
METHOD_PATH = "/benchgrpc.v1.BenchService/StreamItems"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(*paths: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = os.pathsep.join(map(str, paths))
    return env


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Server:
    """One server process on 127.0.0.1 with a free port; ``kind`` is baseline, ours, ours_default_loop
    (server.App on asyncio's default loop) or pycqrs.

    ``args`` are added to ``python -m server``'s command line; ``extra_env`` to its environment.
    """

    def __init__(
        self,
        kind: str,
        *,
        pycqrs_python: str = "",
        workers: int = 0,
        wrap: list[str] | None = None,
        args: tuple[str, ...] = (),
        extra_env: dict[str, str] | None = None,
    ):
        self.kind = kind
        self.port = free_port()
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{kind}{workers or ''}-{self.port}.log"
        if kind == "ours":
            cmd = [sys.executable, "-m", "server", "--app", "bench._grpc_app:create_app"]
            cmd += ["--address", f"127.0.0.1:{self.port}", "--grace", "1"]
            if workers:
                cmd += ["--workers", str(workers)]
            cmd += args
            env = {**_env(ROOT, GEN), **(extra_env or {})}
        elif kind == "ours_default_loop":
            cmd = [sys.executable, "-m", "bench._grpc_app", "--port", str(self.port)]
            env = {**_env(ROOT, GEN), **(extra_env or {})}
        else:
            python = pycqrs_python if kind == "pycqrs" else sys.executable
            script = str(ROOT / "bench" / "_grpc_servers.py")
            cmd = [python, script, kind.removesuffix("_uvloop"), "--port", str(self.port)]
            if kind.endswith("_uvloop"):
                cmd.append("--uvloop")
            # not ROOT: the pycqrs server must import python-cqrs as `cqrs`
            env = {**_env(GEN), **(extra_env or {})}
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*(wrap or []), *cmd], cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_serving(workers or 1)

    def _wait_serving(self, expected: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"bench: {self.kind} server exited:\n{self.log_path.read_text()}")
            if self.log_path.read_text().count("serving address=") >= expected:
                return
            time.sleep(0.1)
        raise SystemExit(f"bench: {self.kind} server did not start in {timeout}s")

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self, *, loop_thread: bool = False) -> float:
        """CPU time (user + system) the server has used: the whole process, or only its main thread,
        which runs the event loop and so every line of Python per message."""
        return cpu_seconds(self.pid, loop_thread=loop_thread)

    def rss_kb(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])
        return out

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def py_client(port: int, scenarios: list[dict[str, Any]], server_pid: int = 0) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench._grpc_client",
            "--port",
            str(port),
            "--server-pid",
            str(server_pid),
            "--scenarios",
            json.dumps(scenarios),
        ],
        cwd=ROOT,
        env=_env(ROOT, GEN),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        raise SystemExit(f"bench: python client failed:\n{out.stderr}")
    return dict(json.loads(out.stdout))


def cpu_seconds(pid: int, *, loop_thread: bool = False) -> float:
    """CPU time (user + system) process ``pid`` has used (Linux): all its threads, or only the main one."""
    where = f"/proc/{pid}/task/{pid}/stat" if loop_thread else f"/proc/{pid}/stat"
    with open(where) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def request_file(payload: int, count: int, with_event: bool) -> Path:
    """The gRPC-framed request body h2load sends (``-d``)."""
    from benchgrpc.v1 import bench_pb2

    body = bench_pb2.StreamItemsRequest(count=count, payload_size=payload, with_event=with_event)
    data = body.SerializeToString()
    path = LOGS / f"request-{payload}-{count}-{int(with_event)}.bin"
    LOGS.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00" + len(data).to_bytes(4, "big") + data)
    return path


def stream_bytes(payload: int, count: int) -> int:
    """DATA bytes of one complete stream: every item framed (5 bytes + message)."""
    from benchgrpc.v1 import bench_pb2

    item = bench_pb2.StreamItem(index=1, payload=b"x" * payload).ByteSize()
    return count * (5 + item)


_FINISHED = re.compile(r"finished in ([\d.]+)(m?s)")
_DATA = re.compile(r"traffic: .*?, .*? headers .*?, \S+ \((\d+)\) data")
_REQS = re.compile(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded")


def h2load_argv(
    h2load_path: str,
    port: int,
    data: Path,
    *,
    total: int,
    streams: int,
    connections: int = 1,
    rate: float | None = None,
) -> list[str]:
    """h2load's command line: ``total`` StreamItems calls with the request body ``data``, ``streams``
    at a time over ``connections`` connections; with ``rate``, started at that many calls/s."""
    cmd = [h2load_path, "-n", str(total), "-c", str(connections), "-m", str(streams // connections)]
    cmd += ["-t", "1"]
    if rate is not None:
        cmd += ["--rps", f"{rate / connections:g}"]
    cmd += ["-d", str(data), "-H", "content-type: application/grpc", "-H", "te: trailers"]
    return [*cmd, f"http://127.0.0.1:{port}{METHOD_PATH}"]


def h2load_seconds(text: str, returncode: int, *, total: int, expected_bytes: int) -> float:
    """The run's duration from h2load's output; exits unless all ``total`` calls completed and their
    DATA came to ``expected_bytes`` (h2load ignores grpc-status, so the bytes are the check)."""
    finished, got, reqs = _FINISHED.search(text), _DATA.search(text), _REQS.search(text)
    if returncode != 0 or not (finished and got and reqs):
        raise SystemExit(f"bench: h2load failed ({returncode}):\n{text}")
    data_bytes = int(got[1])
    if data_bytes != expected_bytes or int(reqs[3]) != total:
        raise SystemExit(
            f"bench: h2load received {data_bytes} data bytes and {reqs[3]} complete streams; "
            f"expected {expected_bytes} bytes from {total} streams\n{text}"
        )
    return float(finished[1]) / (1000.0 if finished[2] == "ms" else 1.0)


def h2load(
    h2load_path: str,
    port: int,
    *,
    payload: int,
    with_event: bool,
    streams: int,
    total: int,
    connections: int = 1,
    count: int = 1000,
) -> dict[str, Any]:
    """``total`` streams of ``count`` items, ``streams`` at a time over ``connections`` connections."""
    data = request_file(payload, count, with_event)
    cmd = h2load_argv(h2load_path, port, data, total=total, streams=streams, connections=connections)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    expected = total * stream_bytes(payload, count)
    seconds = h2load_seconds(out.stdout + out.stderr, out.returncode, total=total, expected_bytes=expected)
    messages = total * count
    return {"messages": messages, "seconds": seconds, "msgs_per_s": messages / seconds}
