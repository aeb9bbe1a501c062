"""python-cqrs 5.x path of :mod:`cqrs.requests.bootstrap`."""

from cqrs.requests.bootstrap import (
    bootstrap,
    bootstrap_streaming,
    setup_event_emitter,
    setup_mediator,
    setup_streaming_mediator,
)

__all__ = [
    "bootstrap",
    "bootstrap_streaming",
    "setup_event_emitter",
    "setup_mediator",
    "setup_streaming_mediator",
]
