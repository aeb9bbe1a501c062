"""gRPC benchmark: this server against a hand-written grpc.aio servicer and python-cqrs 5.3, side by side.

    python -m bench.grpc_bench [--quick] [--repeat N] [--profile/--no-profile]   (``make bench`` runs it)

Servers, each in its own process on 127.0.0.1 (bench/_grpc_servers.py, bench/_grpc_app.py):

* ``baseline``: a hand-written grpc.aio async-generator servicer on the default event loop (and, as a
  reference row only, the same servicer on uvloop: ``baseline_uvloop``);
* ``ours_0`` / ``ours_1``: ``python -m server`` serving the same RPC through server.App and a
  StreamingRequestHandler, with 0 events and with 1 event per item handled by 2 EventHandlers;
* ``pycqrs_0`` / ``pycqrs_1``: python-cqrs 5.3's StreamingRequestMediator behind a hand-written servicer.

Clients: the Python grpc.aio client (1 stream; 10 streams; time to first message over 200 short
streams) and h2load (1 and 40 concurrent streams of 1,000 messages). Runs alternate the servers
(rotating the order each repeat) to cancel drift; figures are medians, reported as ratios to the
baseline of the same run. Then: server RSS while 1,000 streams are open (workers: bench/workers.py)
and a py-spy profile of our server. Results: bench/results/grpc.json and the ``grpc`` section of
BENCHMARKS.md (compared with the previous json when there is one).
"""

from __future__ import annotations

import argparse
import datetime
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import _grpc_report as report
from bench._grpc_gen import GEN, generate
from bench._grpc_procs import Server, h2load, py_client
from bench._tools import ensure_h2load, ensure_py_spy, ensure_pycqrs_python
from cqrs.settings import MediatorSettings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "grpc.json"

VARIANTS = {  # name: (server kind, with_event)
    "baseline": ("baseline", False),
    "baseline_uvloop": ("baseline_uvloop", False),  # a reference: what uvloop alone is worth
    "ours_0": ("ours", False),
    "ours_1": ("ours", True),
    "pycqrs_0": ("pycqrs", False),
    "pycqrs_1": ("pycqrs", True),
}
PAYLOADS = (16, 1024)


def sizes(quick: bool) -> dict[str, Any]:
    scale = 2 if quick else 1
    return {
        "py1": {"streams": 1, "rounds": 3, "count": 1000 // scale},
        "py10": {"streams": 10, "rounds": 1, "count": 1000 // scale},
        "ttfm": {"streams": 1, "rounds": 100 // scale, "count": 1},
        "h2_1": {"streams": 1, "total": 6 // scale},
        "h2_40": {"streams": 40, "total": 40},
    }


def measure(server: Server, h2: str, variant: str, payload: int, size: dict[str, Any]) -> dict[str, Any]:
    with_event = VARIANTS[variant][1]
    scenarios = [
        {"kind": "load", "name": name, "payload": payload, "with_event": with_event, **size[name]}
        for name in ("py1", "py10", "ttfm")
    ]
    py = py_client(server.port, scenarios)
    out = {
        "py1_msgs_per_s": py["py1"]["msgs_per_s"],
        "py10_msgs_per_s": py["py10"]["msgs_per_s"],
        "ttfm_p50_ms": py["ttfm"]["ttfm_p50_ms"],
        "ttfm_p99_ms": py["ttfm"]["ttfm_p99_ms"],
    }
    one_stream = h2load(h2, server.port, payload=payload, with_event=with_event, **size["h2_1"])
    out["h2_1_msgs_per_s"] = one_stream["msgs_per_s"]
    # 40 streams saturate the server: its CPU per message there is what the framework costs
    process, loop = server.cpu_seconds(), server.cpu_seconds(loop_thread=True)
    run = h2load(h2, server.port, payload=payload, with_event=with_event, **size["h2_40"])
    per_message = 1e6 / run["messages"]
    out["h2_40_msgs_per_s"] = run["msgs_per_s"]
    out["h2_40_cpu_us_per_msg"] = (server.cpu_seconds() - process) * per_message
    out["h2_40_loop_cpu_us_per_msg"] = (server.cpu_seconds(loop_thread=True) - loop) * per_message
    return out


def run_matrix(servers: dict[str, Server], h2: str, repeat: int, quick: bool) -> dict[str, Any]:
    size = sizes(quick)
    names = list(VARIANTS)
    runs: dict[str, dict[str, dict[str, list[float]]]] = {v: {str(p): {} for p in PAYLOADS} for v in names}
    for rep in range(repeat):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        if rep % 2:
            order.reverse()
        for payload in PAYLOADS:
            for variant in order:
                started = time.monotonic()
                figures = measure(servers[VARIANTS[variant][0]], h2, variant, payload, size)
                for key, value in figures.items():
                    runs[variant][str(payload)].setdefault(key, []).append(value)
                print(
                    f"bench grpc: run {rep + 1}/{repeat} {payload:>4} B {variant:<9} "
                    + " ".join(f"{k.removesuffix('_msgs_per_s')}={v:,.0f}" for k, v in figures.items())
                    + f" ({time.monotonic() - started:.1f}s)",
                    flush=True,
                )
    return runs


def open_streams(pycqrs_python: str, streams: int) -> dict[str, Any]:
    """Server RSS growth per open stream, each kind in a fresh process."""
    out: dict[str, Any] = {}
    for kind in ("baseline", "ours", "pycqrs"):
        server = Server(kind, pycqrs_python=pycqrs_python)
        try:
            scenario = {"kind": "open", "name": "open", "streams": streams, "hold_ms": 30_000}
            out[kind] = py_client(server.port, [scenario], server_pid=server.pid)["open"]
        finally:
            server.stop()
        print(
            f"bench grpc: {streams} open streams, {kind}: {out[kind]['kb_per_stream']:.1f} KB/stream",
            flush=True,
        )
    return out


def profile(h2: str, total: int) -> dict[str, Any]:
    """py-spy, attached by pid, on our server while h2load streams 16 B items (40 streams; 0, 1 event)."""
    py_spy = ensure_py_spy()
    out: dict[str, Any] = {}
    for with_event in (False, True):
        raw = GEN.parent / f"profile-ours-{int(with_event)}.txt"
        raw.unlink(missing_ok=True)
        server = Server("ours")
        try:
            spy = subprocess.Popen(
                [py_spy, "record", "--format", "raw", "--rate", "250", "-o", str(raw), "-p", str(server.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
            try:
                run = h2load(h2, server.port, payload=16, with_event=with_event, streams=40, total=total)
            finally:
                spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                spy.wait(30)
        finally:
            server.stop()
        out[f"ours_{int(with_event)}"] = {
            "h2_40_msgs_per_s": run["msgs_per_s"],
            **report.summarize_profile(raw),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repeats and smaller loads, for iteration; prints, does not record the results",
    )
    parser.add_argument("--repeat", type=int, default=None, help="runs per server (default 5; --quick: 2)")
    parser.add_argument("--open-streams", type=int, default=1000)
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--only",
        choices=["matrix", "open", "profile"],
        default=None,
        help="re-measure one part; the other parts are kept from bench/results/grpc.json",
    )
    args = parser.parse_args(argv if argv is not None else [])
    repeat = args.repeat or (2 if args.quick else 5)
    started = time.monotonic()
    h2 = ensure_h2load()
    pycqrs_python = ensure_pycqrs_python()
    generate()
    sys.path.insert(0, str(GEN))
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "make bench" if not argv else "python -m bench.grpc_bench " + " ".join(argv),
        "quick": args.quick,
        "repeat": repeat,
        "machine": report.machine(h2, pycqrs_python),
        "event_timing": MediatorSettings().event_timing,  # what ours_N run under (bench/_grpc_app.py)
    }
    if args.only in (None, "matrix"):
        kinds = dict.fromkeys(kind for kind, _ in VARIANTS.values())
        servers = {kind: Server(kind, pycqrs_python=pycqrs_python) for kind in kinds}
        try:
            runs = run_matrix(servers, h2, repeat, args.quick)
            result["rss_kb"] = {kind: server.rss_kb() for kind, server in servers.items()}
        finally:
            for server in servers.values():
                server.stop()
        result["runs"] = runs
        result["medians"] = report.medians(runs)
        result["ratios"] = report.ratios(runs)
    if args.only in (None, "open"):
        result["open_streams"] = open_streams(pycqrs_python, args.open_streams)
    if args.only in (None, "profile") and args.profile:
        result["profile"] = profile(h2, 80 if args.quick else 240)
    result["seconds"] = round(time.monotonic() - started, 1)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else None
    if previous is not None:
        print(report.changes(previous, result))
    if args.only is not None and previous is not None and not args.quick:
        # one part re-measured: keep the previous json's other parts, say so in the section
        fresh = {
            "matrix": ("runs", "medians", "ratios", "rss_kb"),
            "open": ("open_streams",),
            "profile": ("profile",),
        }[args.only]
        merged = {k: v for k, v in previous.items() if k not in fresh}
        merged.update({k: v for k, v in result.items() if k in fresh})
        merged["command"] = f"{previous.get('command', 'make bench')}, then {result['command']}"
        result = merged
    if args.quick:  # iteration only: compare, show, keep the recorded results as they are
        print(report.render(result) if args.only in (None, "matrix") else json.dumps(result, indent=2))
    elif args.only is None or previous is not None:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        section = report.render(result)
        report.write_section(section)
        print(section)


if __name__ == "__main__":
    main(sys.argv[1:])
