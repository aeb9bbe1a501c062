"""python-cqrs 5.x path of :mod:`cqrs.events.bootstrap`."""

from cqrs.events.bootstrap import bootstrap, setup_mediator

__all__ = ["bootstrap", "setup_mediator"]
