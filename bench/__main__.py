"""Run every benchmark module in turn (``make bench``)."""

from __future__ import annotations

from bench import core, grpc_bench, load, replicas

MODULES = (core, grpc_bench, load, replicas)


def main() -> None:
    for module in MODULES:
        module.main()


if __name__ == "__main__":
    main()
