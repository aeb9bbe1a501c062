"""A demo replica as a real process: ``python -m server --app examples.files:create_app --database ...``."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[2]
SERVING = re.compile(r"serving address=(?P<address>\S+:\d+)")
ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


class Replica:
    """One replica process; ``address`` once it serves, ``log`` holds its stderr lines."""

    def __init__(self, database: str, nats_url: str, data_dir: Path, *extra: str) -> None:
        self.log: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "--app", "examples.files:create_app", "--address", "127.0.0.1:0",
             "--database", database, "--nats-url", nats_url, "--grace", "1", *extra],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "FILES_DATA_DIR": str(data_dir)},
        )  # fmt: skip
        found: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(found,), daemon=True).start()
        try:
            self.address = found.get(timeout=30)
        except queue.Empty:
            self.kill()
            raise AssertionError("replica did not serve within 30 s:\n" + "".join(self.log)) from None
        if not self.address:
            raise AssertionError("replica exited before serving:\n" + "".join(self.log))

    def _read(self, found: queue.Queue[str]) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if match := SERVING.search(line):
                found.put(match["address"])
        found.put("")

    def kill(self) -> None:
        """``kill -9``: no drain, no shutdown callbacks."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def round_robin(*replicas: Replica) -> grpc.aio.Channel:
    """One channel over every replica's address, each new RPC on the next one."""
    target = "ipv4:" + ",".join(replica.address for replica in replicas)
    return grpc.aio.insecure_channel(target, options=[("grpc.service_config", ROUND_ROBIN)])
