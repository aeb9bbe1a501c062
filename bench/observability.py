"""Paired A/B of telemetry: ``python -m server`` with tracing and metrics off, and with both on.

    python -m bench.observability [--pairs N] [--events 0 1] [--quick] [--no-record]

Both servers serve the paired benchmark's RPC (bench/paired.py's scenarios: 1 stream x 30,000
messages, 10 streams x 4,000, 16 B payload), measured in turn by one Python grpc.aio client, the order
alternating every pair. "On" exports every span over OTLP/HTTP to a sink that accepts
and drops them (a process of its own, so it takes no time from the measuring client), and serves
``/metrics`` (scraped once per pair). The report is the median ratio
on / off of messages/s per scenario; it goes to its own BENCHMARKS.md section unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import http.server
import json
import platform
import statistics
import subprocess
import sys
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
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, "-m", "bench.observability", "--sink", str(sink_port)])
    metrics_port = free_port()
    on_env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{sink_port}/v1/traces",
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
        sink.terminate()
        sink.wait()
    return {
        "events_per_item": int(with_event),
        "pairs": pairs,
        "median_on_over_off": {name: round(statistics.median(v), 3) for name, v in ratios.items()},
        "ratios": {name: [round(v, 3) for v in values] for name, values in ratios.items()},
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
    }


def section(results: list[dict[str, Any]]) -> str:
    """The BENCHMARKS.md section: one line per events-per-item setting."""
    begin, end = markers(SECTION)
    lines = [
        f"- {r['events_per_item']} events/item: "
        + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in r["median_on_over_off"].items())
        for r in results
    ]
    return (
        f"{begin}\n## Telemetry (bench/observability.py)\n\nTracing and metrics on / off, msgs/s, median of "
        f"{results[0]['pairs']} pairs, {results[0]['date']}:\n\n" + "\n".join(lines) + f"\n{end}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.observability", description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--events", type=int, nargs="+", choices=[0, 1], default=[0, 1])
    parser.add_argument("--quick", action="store_true", help="a tenth of the messages, for iteration")
    parser.add_argument("--no-record", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--sink", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the sink's own process
    args = parser.parse_args(argv if argv is not None else [])
    if args.sink is not None:
        http.server.ThreadingHTTPServer(("127.0.0.1", args.sink), _Sink).serve_forever()
        return
    results = [run(args.pairs, bool(events), args.quick) for events in args.events]
    print(json.dumps(results, indent=2))
    if not args.no_record:
        replace_section(SECTION, section(results))


if __name__ == "__main__":
    main(sys.argv[1:])
