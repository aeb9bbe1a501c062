"""Benchmarks; ``python -m bench`` (``make bench``) runs them all and updates BENCHMARKS.md."""

import os

# the benches start processes (h2load, servers) while their own grpc channels are busy; grpc's fork
# handlers would then run in the child before its exec and can abort it (ev_epoll1 check failure)
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
