"""The core workload, run as a script by bench/core.py under two interpreters.

It imports ``cqrs`` by name, and the handler of bench/_stream_handlers.py, so the same code measures
this project's package (run with our venv and the repository on PYTHONPATH) and python-cqrs 5.3 (run
with bench/.venvs/python-cqrs). It prints one JSON object: seconds per run for each scenario,
``--repeat`` runs each, interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import cqrs

try:  # this project (and the seed's import path)
    from cqrs.requests import bootstrap as _bootstrap

    bootstrap_streaming = _bootstrap.bootstrap_streaming
except ImportError:  # python-cqrs 5.3
    from cqrs.bootstrap.requests import bootstrap_streaming  # type: ignore[no-redef]

# run as a script, bench/ is on sys.path: the handler both gRPC servers of the benchmark run too
from _stream_handlers import PlainContainer, StreamItem, StreamItemsHandler, StreamItemsRequest, bind_events


async def plain_generator(count: int) -> AsyncIterator[StreamItem]:
    for i in range(count):
        yield StreamItem(index=i, payload=b"")


def build() -> Any:
    return bootstrap_streaming(
        di_container=PlainContainer(),
        commands_mapper=lambda m: m.bind(StreamItemsRequest, StreamItemsHandler),
        domain_events_mapper=bind_events,
    )


def request(count: int, with_event: bool) -> StreamItemsRequest:
    return StreamItemsRequest(count=count, payload_size=0, with_event=with_event, hold_ms=0)


async def consume(stream: AsyncIterator[Any]) -> int:
    n = 0
    async for _ in stream:
        n += 1
    return n


async def run(items: int, repeat: int) -> dict[str, list[float]]:
    mediator = build()
    scenarios: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {
        "plain_generator": lambda: consume(plain_generator(items)),
        "stream_0_events": lambda: consume(mediator.stream(request(items, with_event=False))),
        "stream_1_event_2_handlers": lambda: consume(mediator.stream(request(items, with_event=True))),
    }
    for make in scenarios.values():  # warm-up: caches, specialisation
        await make()
    results: dict[str, list[float]] = {name: [] for name in scenarios}
    for _ in range(repeat):
        for name, make in scenarios.items():
            gc.collect()
            start = time.perf_counter()
            produced = await make()
            results[name].append(time.perf_counter() - start)
            assert produced == items, (name, produced)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results = asyncio.run(run(args.items, args.repeat))
    version = getattr(cqrs, "__version__", None)
    if version is None:
        from importlib import metadata

        try:
            version = metadata.version("python-cqrs")
        except metadata.PackageNotFoundError:
            version = "local"
    print(json.dumps({"python": sys.version.split()[0], "cqrs_version": version, "seconds": results}))


if __name__ == "__main__":
    main()
