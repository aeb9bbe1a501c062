"""Core mediator benchmark: per-item cost of ``stream()`` against a plain async generator and python-cqrs.

Scenarios (same handler code, same number of items, ``--repeat`` interleaved runs, medians):

* ``plain_generator``: an async generator yielding the same Response objects (the floor);
* ``stream_0_events``: ``mediator.stream()`` over a streaming handler that records no events;
* ``stream_1_event_2_handlers``: one DomainEvent per item, handled by two no-op EventHandlers.

Both libraries are imported as ``cqrs``, so each runs :mod:`bench._core_workload` in its own interpreter:
ours with this venv and the repository on ``PYTHONPATH``, python-cqrs 5.3 from the virtualenv that
bench/_tools.py builds on the same Python. Ratios are to the plain-generator time of the same process.
Results: ``bench/results/core.json`` (raw) and the ``core`` section of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench._sections import markers, replace_section
from bench._tools import ensure_pycqrs_python
from cqrs.settings import MediatorSettings

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD = ROOT / "bench" / "_core_workload.py"
RESULTS = ROOT / "bench" / "results" / "core.json"
BEGIN, END = markers("core")
SCENARIOS = ("plain_generator", "stream_0_events", "stream_1_event_2_handlers")


def run_workload(python: Path | str, items: int, repeat: int, ours: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    if ours:
        env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [str(python), str(WORKLOAD), "--items", str(items), "--repeat", str(repeat)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT / "bench",
    )
    return dict(json.loads(out.stdout))


def summarize(raw: dict[str, Any], items: int) -> dict[str, Any]:
    medians = {name: statistics.median(raw["seconds"][name]) for name in SCENARIOS}
    base = medians["plain_generator"]
    return {
        "cqrs_version": raw["cqrs_version"],
        "median_seconds": medians,
        "ratio_to_plain_generator": {name: medians[name] / base for name in SCENARIOS},
        "overhead_us_per_item": {name: (medians[name] - base) / items * 1e6 for name in SCENARIOS},
        "runs_seconds": raw["seconds"],
    }


def render(result: dict[str, Any]) -> str:
    ours, theirs = result["libraries"]["cqrs-grpc"], result["libraries"]["python-cqrs"]
    rows = [
        "| scenario | cqrs-grpc: x plain | python-cqrs 5.3: x plain | overhead µs/item: ours / python-cqrs |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in SCENARIOS:
        rows.append(
            f"| `{name}` | {ours['ratio_to_plain_generator'][name]:.2f} | "
            f"{theirs['ratio_to_plain_generator'][name]:.2f} | "
            f"{ours['overhead_us_per_item'][name]:.2f} / {theirs['overhead_us_per_item'][name]:.2f} |"
        )
    one = "stream_1_event_2_handlers"
    share = ours["overhead_us_per_item"][one] / theirs["overhead_us_per_item"][one]
    verdict = "met" if share <= 0.5 else "NOT met"
    machine = result["machine"]
    return "\n".join(
        [
            BEGIN,
            "## Core mediator (bench/core.py)",
            "",
            f"Per-item cost of `StreamingRequestMediator.stream()` over {result['items']:,} items, "
            f"median of {result['repeat']} interleaved runs, as a multiple of a plain async generator "
            "yielding the same Response objects in the same process (lower is better). "
            "1 event = one DomainEvent recorded per item, handled by two no-op EventHandlers "
            "(default settings of each library: sequential handlers; "
            f"ours `{result.get('event_timing', 'with_send')}`).",
            "",
            *rows,
            "",
            f"Target (per-item overhead with 1 event at most half of python-cqrs's): {verdict} "
            f"(ours is {share:.1%} of python-cqrs's).",
            "",
            f"{result['date']}, {machine['cpus']} CPUs, Python {machine['python']} for both, python-cqrs "
            f"{theirs['cqrs_version']}; raw: `bench/results/core.json`.",
            END,
        ]
    )


def write_benchmarks(section: str) -> None:
    replace_section("core", section)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.core")
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv if argv is not None else [])
    theirs_python = ensure_pycqrs_python()
    print(f"bench core: {args.items:,} items x {args.repeat} runs, cqrs-grpc ...", flush=True)
    ours = summarize(run_workload(sys.executable, args.items, args.repeat, ours=True), args.items)
    print("bench core: python-cqrs 5.3 ...", flush=True)
    theirs = summarize(run_workload(theirs_python, args.items, args.repeat, ours=False), args.items)
    result = {
        "items": args.items,
        "repeat": args.repeat,
        "date": datetime.date.today().isoformat(),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "libraries": {"cqrs-grpc": ours, "python-cqrs": theirs},
        "event_timing": MediatorSettings().event_timing,  # the default the workload runs under
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    section = render(result)
    write_benchmarks(section)
    print(section)


if __name__ == "__main__":
    main(sys.argv[1:])
