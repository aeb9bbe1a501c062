"""Paired A/B of ``python -m server`` variants: is an optional speed-up worth keeping?

    python -m bench.accel_ab [--rounds N] [--payload B] [--variants NAME ...]

Every variant runs in its own server process, all started once; each round measures every variant
(the order rotates and reverses from round to round, so drift and warm-up fall on each alike) with
the Python grpc.aio client (1 stream, 10 streams) and h2load (40 streams), 0 events per item. For
each measure, each round gives a ratio of a variant to the reference (the first variant); the
report is the median of those ratios. docs/accel.md says which speed-ups are kept and why.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

from bench._grpc_gen import GEN, generate
from bench._grpc_procs import Server, h2load, py_client
from bench._tools import ensure_h2load

# name: (extra command-line flags, extra environment); the first variant is the reference
VARIANTS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "python": ((), {"CQRS_GRPC_NO_EXTENSIONS": "1"}),
    "compiled": ((), {}),
}
# higher is better for every measure but the CPU ones
MEASURES = ("py1_msgs_per_s", "py10_msgs_per_s", "h2_40_msgs_per_s", "h2_40_loop_cpu_us_per_msg")


def measure(server: Server, h2: str, payload: int) -> dict[str, float]:
    scenarios = [
        {"kind": "load", "name": "py1", "payload": payload, "streams": 1, "rounds": 3, "count": 1000},
        {"kind": "load", "name": "py10", "payload": payload, "streams": 10, "rounds": 1, "count": 1000},
    ]
    py = py_client(server.port, scenarios)
    loop = server.cpu_seconds(loop_thread=True)
    run = h2load(h2, server.port, payload=payload, with_event=False, streams=40, total=40)
    return {
        "py1_msgs_per_s": py["py1"]["msgs_per_s"],
        "py10_msgs_per_s": py["py10"]["msgs_per_s"],
        "h2_40_msgs_per_s": run["msgs_per_s"],
        "h2_40_loop_cpu_us_per_msg": (server.cpu_seconds(loop_thread=True) - loop) * 1e6 / run["messages"],
    }


def run(variants: list[str], rounds: int, payload: int) -> dict[str, Any]:
    generate()
    sys.path.insert(0, str(GEN))  # h2load's request body is built with the generated module
    h2 = ensure_h2load()
    servers = {name: Server("ours", args=VARIANTS[name][0], extra_env=VARIANTS[name][1]) for name in variants}
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    try:
        for name in variants:  # warm-up, not counted
            measure(servers[name], h2, payload)
        for index in range(rounds):
            order = variants[index % len(variants) :] + variants[: index % len(variants)]
            if index % 2:
                order.reverse()
            for name in order:
                figures[name].append(measure(servers[name], h2, payload))
                print(f"accel_ab: round {index + 1}/{rounds} {name}: {figures[name][-1]}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    reference = variants[0]
    ratios = {
        name: {
            key: statistics.median(
                b[key] / a[key] for a, b in zip(figures[reference], figures[name], strict=True)
            )
            for key in MEASURES
        }
        for name in variants[1:]
    }
    return {"reference": reference, "rounds": rounds, "payload": payload, "ratios": ratios, "runs": figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--payload", type=int, default=16)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", help="also write every figure to this JSON file")
    args = parser.parse_args()
    result = run(args.variants, args.rounds, args.payload)
    if args.out:
        with open(args.out, "w") as out:
            json.dump(result, out, indent=1)
    print(json.dumps(result["ratios"], indent=2))
    print(f"ratios to {result['reference']}, median of {result['rounds']} paired rounds")


if __name__ == "__main__":
    main()
