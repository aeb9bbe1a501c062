"""Optional speed-ups, behind this one boundary; the server works the same without any of them.

The core asks here, once each: the codec for :func:`wire_encoder`, ``python -m server`` (and apps
that make their own loop) for :func:`new_event_loop`.

* The compiled wire encoder (``_cwire.pyx``, built by ``make install`` where a C compiler is found)
  writes flat messages without a protobuf message.
* uvloop serves when it is installed (the ``fast`` extra).

``CQRS_GRPC_NO_EXTENSIONS=1`` turns both off: the plain paths only.

Nothing here reaches into grpc's private internals.

docs/accel.md says why each is here.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.codec.messages import MessagePlan

__all__ = [
    "NO_EXTENSIONS",
    "compiled_encoder_available",
    "new_event_loop",
    "wire_encoder",
]

# as aiohttp's AIOHTTP_NO_EXTENSIONS: the pure-Python paths only, e.g. to compare or to debug
NO_EXTENSIONS = os.environ.get("CQRS_GRPC_NO_EXTENSIONS", "") not in ("", "0")


def compiled_encoder_available() -> bool:
    """Whether :func:`wire_encoder` can offer the compiled encoder: it was built and is not turned off."""
    return not NO_EXTENSIONS and importlib.util.find_spec("server.accel._cwire") is not None


def wire_encoder(plan: MessagePlan, slow: Callable[[Any], bytes]) -> Callable[[Any], bytes] | None:
    """The compiled encoder for ``plan``'s message, or None: the message is not flat, the module was
    not built, or extensions are off. It writes protobuf's bytes and hands ``slow`` (the protobuf
    path) every object it does not take as is."""
    if not compiled_encoder_available():
        return None
    try:
        from server.accel import wire
    except ImportError:  # installed without a C compiler
        return None
    return wire.wire_encoder(plan, slow)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop for serving: uvloop when installed and extensions are on, else asyncio's."""
    if NO_EXTENSIONS:
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:  # uvloop is the optional "fast" extra
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
