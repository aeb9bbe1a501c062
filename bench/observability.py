"""Paired A/B of telemetry: ``python -m server`` with tracing and metrics off, and with both on.

    python -m bench.observability [--pairs N] [--events 0|1] [--quick] [--no-record]

Both servers serve the paired benchmark's RPC (bench/paired.py's scenarios: 1 stream x 30,000
messages, 10 streams x 4,000, 16 B payload), measured in turn by one Python grpc.aio client, the order
alternating every pair. "On" exports every span over OTLP/HTTP to a sink in this process that accepts
and drops them, and serves ``/metrics`` (scraped once per pair). The report is the median ratio
on / off of messages/s per scenario; it goes to its own BENCHMARKS.md section unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import http.server
import json
import platform
import statistics
import sys
import threading
import time
import urllib.request
from typing import Any

from bench._grpc_gen import GEN, generate
from bench._grpc_procs import Server, free_port, py_client
from bench._sections import markers, replace_section
from bench.paired import scenarios

SECTION = "observability"


class _Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that reads each export and answers 200 with nothing kept."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def run(pairs: int, with_event: bool, quick: bool) -> dict[str, Any]:
    generate()
    sys.path.insert(0, str(GEN))
    plan = scenarios(with_event, quick)
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    metrics_port = free_port()
    on_env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{sink.server_address[1]}/v1/traces",
        "OTEL_SERVICE_NAME": "bench",
    }
    servers = {
        "off": Server("ours"),
        "on": Server("ours", args=("--metrics-address", f"127.0.0.1:{metrics_port}"), extra_env=on_env),
    }
    ratios: dict[str, list[float]] = {sc["name"]: [] for sc in plan}
    try:
        for server in servers.values():  # a warm-up round each, not counted
            py_client(server.port, scenarios(with_event, True))
        for pair in range(pairs):
            order = ["off", "on"] if pair % 2 == 0 else ["on", "off"]
            got = {kind: py_client(servers[kind].port, plan) for kind in order}
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as scrape:
                scrape.read()
            for sc in plan:
                name = sc["name"]
                ratios[name].append(got["on"][name]["msgs_per_s"] / got["off"][name]["msgs_per_s"])
    finally:
        for server in servers.values():
            server.stop()
        sink.shutdown()
    return {
        "events_per_item": int(with_event),
        "pairs": pairs,
        "median_on_over_off": {name: round(statistics.median(v), 3) for name, v in ratios.items()},
        "ratios": {name: [round(v, 3) for v in values] for name, values in ratios.items()},
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
    }


def section(result: dict[str, Any]) -> str:
    """The BENCHMARKS.md section: one line, as the file is near its word limit."""
    begin, end = markers(SECTION)
    cells = ", ".join(f"{name} {ratio:.2f}x" for name, ratio in result["median_on_over_off"].items())
    return (
        f"{begin}\n## Telemetry\n\nOn / off, msgs/s, median of {result['pairs']} pairs, "
        f"{result['events_per_item']} events/item: {cells}. `python -m bench.observability`, "
        f"{result['date']}.\n{end}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.observability", description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--events", type=int, choices=[0, 1], default=0)
    parser.add_argument("--quick", action="store_true", help="a tenth of the messages, for iteration")
    parser.add_argument("--no-record", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args(argv if argv is not None else [])
    result = run(args.pairs, bool(args.events), args.quick)
    print(json.dumps(result, indent=2))
    if not args.no_record:
        replace_section(SECTION, section(result))


if __name__ == "__main__":
    main(sys.argv[1:])
