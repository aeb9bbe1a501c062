"""The paired benchmark: server.App against a hand-written grpc.aio servicer, both on asyncio's default loop.

    python -m bench.paired [--pairs N] [--events 0|1] [--quick]

Both servers serve the same RPC (bench/protos); one Python grpc.aio client loads each in turn, the
order alternating every pair: 1 stream x 30,000 messages and 10 streams x 4,000, 16 B payload. It
prints the median ratio (ours / baseline, messages/s) of each scenario, and the ratios of every pair.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

from bench._grpc_gen import GEN, generate
from bench._grpc_procs import Server, py_client


def scenarios(with_event: bool, quick: bool) -> list[dict[str, Any]]:
    scale = 10 if quick else 1
    common = {"kind": "load", "payload": 16, "rounds": 1, "with_event": with_event}
    return [
        {**common, "name": "1 stream", "streams": 1, "count": 30_000 // scale},
        {**common, "name": "10 streams", "streams": 10, "count": 4_000 // scale},
    ]


def run(pairs: int, with_event: bool, quick: bool) -> dict[str, Any]:
    generate()
    sys.path.insert(0, str(GEN))
    plan = scenarios(with_event, quick)
    servers = {kind: Server(kind) for kind in ("baseline", "ours_default_loop")}
    ratios: dict[str, list[float]] = {sc["name"]: [] for sc in plan}
    try:
        for _, server in servers.items():  # a warm-up round each, not counted
            py_client(server.port, scenarios(with_event, True))
        for pair in range(pairs):
            order = ["baseline", "ours_default_loop"]
            if pair % 2:
                order.reverse()
            got = {kind: py_client(servers[kind].port, plan) for kind in order}
            for sc in plan:
                name = sc["name"]
                ratios[name].append(
                    got["ours_default_loop"][name]["msgs_per_s"] / got["baseline"][name]["msgs_per_s"]
                )
    finally:
        for server in servers.values():
            server.stop()
    return {
        "events_per_item": int(with_event),
        "pairs": pairs,
        "median": {name: round(statistics.median(values), 3) for name, values in ratios.items()},
        "ratios": {name: [round(v, 3) for v in values] for name, values in ratios.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.paired", description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--events", type=int, choices=[0, 1], default=0)
    parser.add_argument("--quick", action="store_true", help="a tenth of the messages, for iteration")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.pairs, bool(args.events), args.quick), indent=2))


if __name__ == "__main__":
    main()
