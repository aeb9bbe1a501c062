"""Summaries, comparisons and the BENCHMARKS.md section of the gRPC benchmark."""

from __future__ import annotations

import collections
import functools
import os
import platform
import statistics
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench._sections import markers, replace_section
from server import accel

BEGIN, END = markers("grpc")
THROUGHPUT = ("py1_msgs_per_s", "py10_msgs_per_s", "h2_1_msgs_per_s", "h2_40_msgs_per_s")
LATENCY = ("ttfm_p50_ms", "ttfm_p99_ms")
CPU = ("h2_40_cpu_us_per_msg", "h2_40_loop_cpu_us_per_msg")
LABELS = {
    "py1_msgs_per_s": "py 1 stream",
    "py10_msgs_per_s": "py 10 streams",
    "h2_1_msgs_per_s": "h2load 1",
    "h2_40_msgs_per_s": "h2load 40",
    "ttfm_p50_ms": "TTFM p50",
    "ttfm_p99_ms": "TTFM p99",
}


def machine(h2load: str, pycqrs_python: str) -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    h2_version = subprocess.run([h2load, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    pycqrs = subprocess.run(
        [pycqrs_python, "-c", "from importlib.metadata import version; print(version('python-cqrs'))"],
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout.strip()
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "grpcio": metadata.version("grpcio"),
        "protobuf": metadata.version("protobuf"),
        "uvloop": _version("uvloop"),
        "python-cqrs": pycqrs,
        "h2load": h2_version,
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def medians(runs: dict[str, Any]) -> dict[str, Any]:
    return {
        variant: {
            payload: {k: statistics.median(v) for k, v in figures.items()} for payload, figures in by.items()
        }
        for variant, by in runs.items()
    }


def ratios(runs: dict[str, Any], over: str = "baseline") -> dict[str, Any]:
    """Each figure over ``over``'s same figure in the same repeat and payload, then the median over repeats.

    Pairing by repeat cancels the drift of a shared machine (servers alternate within a repeat), which
    a ratio of two medians would not.
    """
    base = runs[over]
    return {
        variant: {
            payload: {
                k: statistics.median(v / b for v, b in zip(values, base[payload][k], strict=True))
                for k, values in figures.items()
            }
            for payload, figures in by.items()
        }
        for variant, by in runs.items()
    }


def targets(result: dict[str, Any]) -> list[tuple[str, float, float, float, bool]]:
    """(description, median over the 8 throughput cells, worst cell, target, met by the median)."""
    r = result["ratios"]
    vs = ratios(result["runs"], over="pycqrs_1")["ours_1"]
    cells = [(p, k) for p in r["baseline"] for k in THROUGHPUT]
    rows = [
        ("ours, 0 events / baseline", [r["ours_0"][p][k] for p, k in cells], 1.05),
        (
            "ours, 1 event to 2 handlers / baseline without events",
            [r["ours_1"][p][k] for p, k in cells],
            0.85,
        ),
        ("ours, 1 event / python-cqrs 5.3, 1 event", [vs[p][k] for p, k in cells], 2.0),
    ]
    return [
        (what, statistics.median(xs), min(xs), goal, statistics.median(xs) >= goal) for what, xs, goal in rows
    ]


def summarize_profile(raw: Path, top: int = 14) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's raw (collapsed stack) output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    if not raw.exists():
        return {"samples": 0}
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in _name_the_write(stack.split(";"))]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return {
        "samples": total,
        "breakdown": _breakdown(raw),
        "self": [(name, n / total) for name, n in own.most_common(top)],
        "inclusive": [(name, n / total) for name, n in inclusive.most_common(top * 2)],
    }


_WRITE = "grpc write (Cython, core, sendmsg; awaited in the mediator's stream loop)"

# The frames that run one RPC's stream: the adapter's coroutine (serve_stream) and the mediator's loop.
_ADAPTER_FRAMES = ("RpcAdapter._streamed.",)
_RPC_FRAMES = ("StreamingRequestMediator._run", *_ADAPTER_FRAMES)
# The compiled encoder has no Python frame (the protobuf path is matched by name): its time is its
# caller's, the adapter's send. The report runs in the servers' interpreter, so the install is theirs.
_ADAPTER_STAGE = (
    "adapter (compiled encode, write, set-up)"
    if accel.compiled_encoder_available()
    else "adapter (send, set-up)"
)


@functools.cache
def _write_lines() -> frozenset[int]:
    """Lines of ``cqrs/streaming.py`` that await the sink, which in the server is grpc's write: its
    coroutine has no Python frame, so py-spy charges the write (grpc's Cython, core and the
    ``sendmsg`` syscall) to these lines."""
    source = (Path(__file__).resolve().parents[1] / "cqrs" / "streaming.py").read_text()
    return frozenset(n for n, text in enumerate(source.splitlines(), 1) if "await sink(item)" in text)


def _name_the_write(frames: list[str]) -> list[str]:
    """A stack whose innermost frame is the mediator's loop waiting on the sink is grpc's write."""
    leaf = frames[-1] if frames else ""
    where = leaf.partition(" (")[2].rstrip(")")
    path, _, line = where.rpartition(":")
    if path.endswith("cqrs/streaming.py") and line.isdigit() and int(line) in _write_lines():
        return [*frames, _WRITE]
    return frames


def _breakdown(raw: Path) -> dict[str, float]:
    """Shares of the event loop thread's busy samples per stage of one message (Python frames only:
    time in grpc's C code is charged to the Python frame that called it, e.g. the sink's write)."""
    shares: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or "Thread._bootstrap" in stack:  # grpc's completion-queue poller thread
            continue
        count = int(count_text)
        frames = _name_the_write(stack.split(";"))
        at = [i for i, frame in enumerate(frames) if frame.startswith(_RPC_FRAMES)]
        if not at:
            shares["loop and grpc callbacks"] += count
            continue
        below = ";".join(frames[at[0] :])  # from the RPC's outermost frame of ours inwards
        if frames[-1] == _WRITE:
            shares["grpc write"] += count
        elif "dispatch (" in below or "_run_sequentially" in below or "EventHandler" in below:
            shares["event dispatch"] += count
        elif "encode_by_message (" in below or "fill (" in below:  # the protobuf path (no compiled encoder)
            shares["protobuf encode"] += count
        elif "handle (" in below and "_stream_handlers" in below:
            shares["handler code"] += count
        elif frames[-1].startswith(_ADAPTER_FRAMES):
            shares[_ADAPTER_STAGE] += count
        elif "streaming.py" in below or "container.py" in below:
            shares["mediator"] += count
        else:
            shares["other"] += count
    busy = sum(shares.values()) or 1
    return {name: n / busy for name, n in shares.most_common()}


def _short(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``; thread/process frames pass through."""
    name, _, where = frame.partition(" (")
    if not where:
        return frame
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    tail = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({tail})"


def changes(previous: dict[str, Any], current: dict[str, Any]) -> str:
    """Ratio changes against the previous run, one line per variant, payload and figure."""
    if "ratios" not in previous or "ratios" not in current:
        return "bench grpc: no previous ratios to compare with"
    lines = [
        f"bench grpc: change against the previous run ({previous.get('date', '?')}), ratios to baseline:"
    ]
    for variant, by in current["ratios"].items():
        if variant == "baseline":
            continue
        for payload, figures in by.items():
            old = previous["ratios"].get(variant, {}).get(payload, {})
            parts = [
                f"{LABELS[k]} {old[k]:.2f}->{v:.2f}" for k, v in figures.items() if k in old and k in LABELS
            ]
            if parts:
                lines.append(f"  {variant:<9} {payload:>4} B: " + ", ".join(parts))
    return "\n".join(lines)


def _table(result: dict[str, Any], payload: str) -> list[str]:
    keys = [*THROUGHPUT, *LATENCY]
    rows = [
        "| server | " + " | ".join(LABELS[k] for k in keys) + " |",
        "| --- | " + " | ".join("---:" for _ in keys) + " |",
    ]
    base = result["medians"]["baseline"][payload]
    rows.append(
        "| baseline (absolute) | "
        + " | ".join(f"{base[k]:,.0f}/s" if k in THROUGHPUT else f"{base[k]:.2f} ms" for k in keys)
        + " |"
    )
    for variant, by in result["ratios"].items():
        rows.append(f"| {variant} | " + " | ".join(f"{by[payload][k]:.2f}" for k in keys) + " |")
    return rows


def _cpu_table(result: dict[str, Any]) -> list[str]:
    """Server CPU per message under h2load 40 streams, or nothing for a run that did not record it."""
    payloads = list(result["ratios"]["baseline"])
    if any(CPU[0] not in result["medians"]["baseline"][p] for p in payloads):
        return []
    columns = [(p, k) for p in payloads for k in CPU]
    label = {CPU[0]: "process", CPU[1]: "loop thread"}
    base = result["medians"]["baseline"]
    rows = [
        "**Server CPU per message under h2load, 40 streams** (user + system time of the whole process "
        "and of its event-loop thread; ratio to the baseline, lower is better):",
        "",
        "| server | " + " | ".join(f"{p} B {label[k]}" for p, k in columns) + " |",
        "| --- | " + " | ".join("---:" for _ in columns) + " |",
        "| baseline (absolute) | " + " | ".join(f"{base[p][k]:.1f} µs" for p, k in columns) + " |",
    ]
    for variant, by in result["ratios"].items():
        rows.append(f"| {variant} | " + " | ".join(f"{by[p][k]:.2f}" for p, k in columns) + " |")
    return [*rows, ""]


# Written under the figures on every run; the method notes themselves live in docs/testing.md.
READING = ["How to read these figures: [docs/testing.md](docs/testing.md#reading-the-benchmarks)."]


def render(result: dict[str, Any]) -> str:
    mach = result["machine"]
    # Results recorded before the json carried the timing were measured under with_send.
    timing = result.get("event_timing", "with_send")
    lines = [BEGIN, "## gRPC end to end (bench/grpc_bench.py)", ""]
    lines += [
        f"Run `{result['command']}` on {result['date']}, {result['repeat']} alternating runs per server "
        f"(medians), {result['seconds']:.0f} s in all{' (--quick)' if result['quick'] else ''}.",
        f"{mach['cpus']} CPUs shared by clients and servers; "
        f"Python {mach['python']}, grpcio {mach['grpcio']}, protobuf {mach['protobuf']}, "
        f"uvloop {mach['uvloop']}, python-cqrs {mach['python-cqrs']}, {mach['h2load']}.",
        "",
        "`baseline`: hand-written grpc.aio servicer (`_uvloop`: on uvloop); `ours_N`: `python -m server` "
        f"with N events per item to 2 no-op handlers (`{timing}`); `pycqrs_N`: python-cqrs behind a "
        "servicer. Messages/s as a ratio to the baseline; TTFM: time to first message (lower is better).",
        "",
    ]
    if "ratios" in result:
        for payload in result["ratios"]["baseline"]:
            lines += [f"**{payload} B payload**", "", *_table(result, payload), ""]
        lines += _cpu_table(result)
        rss = result["rss_kb"]
        lines.append(
            "Server RSS after the runs (VmRSS, ratio to baseline): "
            + ", ".join(
                f"{k} {v['VmRSS'] / 1024:.1f} MiB ({v['VmRSS'] / rss['baseline']['VmRSS']:.2f})"
                for k, v in rss.items()
            )
            + "."
        )
        lines += [
            "",
            "Targets, each the median over the 8 throughput cells of per-repeat ratios:",
            "",
            "| target | median cell | worst cell | target | met (median) |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for what, median, worst, goal, met in targets(result):
            lines.append(
                f"| {what} | {median:.2f} | {worst:.2f} | ≥ {goal:.2f} | {'yes' if met else '**no**'} |"
            )
        lines.append("")
    if "open_streams" in result:
        per_stream = ", ".join(
            f"{kind} {o['kb_per_stream']:.1f} KB" for kind, o in result["open_streams"].items()
        )
        lines += [f"**1,000 open streams**, RSS growth per stream (fresh server): {per_stream}.", ""]
    lines += [*READING, "", END]
    return "\n".join(lines)


def write_section(section: str) -> None:
    """Replace the grpc section of BENCHMARKS.md."""
    replace_section("grpc", section)
