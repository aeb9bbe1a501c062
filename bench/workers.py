"""``python -m server --workers 2`` against ``--workers 1`` under the same h2load run, as a ratio.

One h2load command line (8 connections x 5 streams of 16-byte items; SO_REUSEPORT spreads connections
over the workers) is run against each server in turn, alternating which goes first, for items with no
event and with one in-process event each. Results: ``bench/results/workers.json`` and the ``workers``
section of ``BENCHMARKS.md``.

    python -m bench.workers [--total 160] [--items 1000] [--repeat 4]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

from bench._grpc_gen import generate
from bench._grpc_procs import Server, h2load
from bench._sections import markers, replace_section
from bench._tools import ensure_h2load

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "workers.json"
BEGIN, END = markers("workers")
CONNECTIONS, STREAMS = 8, 40  # streams in flight over all connections


def one_run(h2: str, workers: int, *, with_event: bool, total: int, items: int) -> float:
    """Messages/s h2load received from a fresh ``--workers N`` server (which must stop cleanly)."""
    server = Server("ours", workers=workers)
    try:
        run = h2load(
            h2,
            server.port,
            payload=16,
            with_event=with_event,
            streams=STREAMS,
            total=total,
            connections=CONNECTIONS,
            count=items,
        )
    finally:
        code = server.stop()
    if code != 0:
        raise SystemExit(f"bench workers: --workers {workers} exited {code}; see {server.log_path}")
    return float(run["msgs_per_s"])


def run(h2: str, *, total: int, items: int, repeat: int) -> dict[str, Any]:
    """Alternating runs of 1 and 2 workers per scenario; medians and their ratio."""
    scenarios: dict[str, Any] = {}
    for events in (0, 1):
        figures: dict[str, list[float]] = {"1": [], "2": []}
        for rep in range(repeat):
            for workers in (1, 2) if rep % 2 == 0 else (2, 1):
                speed = one_run(h2, workers, with_event=bool(events), total=total, items=items)
                figures[str(workers)].append(speed)
                print(f"bench workers: {events} events, --workers {workers}: {speed:,.0f} msgs/s", flush=True)
        medians = {k: statistics.median(v) for k, v in figures.items()}
        scenarios[str(events)] = {"runs_msgs_per_s": figures, "median_msgs_per_s": medians}
        scenarios[str(events)]["ratio"] = medians["2"] / medians["1"]
    return {"total": total, "items": items, "repeat": repeat, "scenarios": scenarios}


def render(result: dict[str, Any]) -> str:
    lines = [
        BEGIN,
        "## --workers 2 against 1 (bench/workers.py)",
        "",
        f"One h2load run ({CONNECTIONS} connections x {STREAMS // CONNECTIONS} streams, {result['total']} "
        f"streams x {result['items']} items of 16 B) per server, median of {result['repeat']} alternating "
        f"runs; {result['date']} (`python -m bench.workers`).",
        "",
        "| events per item | 1 worker msgs/s | 2 workers msgs/s | 2 / 1 |",
        "|---:|---:|---:|---:|",
    ]
    for events, row in result["scenarios"].items():
        med = row["median_msgs_per_s"]
        lines.append(f"| {events} | {med['1']:,.0f} | {med['2']:,.0f} | **{row['ratio']:.2f}x** |")
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__.split("\n")[0])
    parser.add_argument("--total", type=int, default=160, help="streams per h2load run")
    parser.add_argument("--items", type=int, default=1000, help="items per stream")
    parser.add_argument("--repeat", type=int, default=4, help="runs per server and scenario")
    parser.add_argument("--no-record", action="store_true", help="print only; leave the results as they are")
    args = parser.parse_args(argv if argv is not None else [])
    h2 = ensure_h2load()
    sys.path.insert(0, str(generate()))
    result = run(h2, total=args.total, items=args.items, repeat=args.repeat)
    result["date"] = datetime.date.today().isoformat()
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    section = render(result)
    print(section)
    if not args.no_record:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        replace_section("workers", section)


if __name__ == "__main__":
    main(sys.argv[1:])
