"""Run every benchmark module in turn (``make bench``)."""

from __future__ import annotations

from bench import bus, core, grpc_bench, load, observability, replicas, web, workers

MODULES = (core, grpc_bench, load, observability, bus, web, workers, replicas)


def main() -> None:
    for module in MODULES:
        module.main()


if __name__ == "__main__":
    main()
