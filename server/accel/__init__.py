"""Optional speed-ups, behind this one boundary; the server works the same without any of them.

The core asks here, in one place: the codec for :func:`wire_encoder`.

* The compiled wire encoder (``_cwire.pyx``, built by ``make install`` where a C compiler is found)
  writes flat messages without a protobuf message. ``CQRS_GRPC_NO_EXTENSIONS=1`` turns it off.

docs/accel.md says why each is here.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.codec.messages import MessagePlan

__all__ = [
    "NO_EXTENSIONS",
    "compiled_encoder_available",
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
    if NO_EXTENSIONS:
        return None
    try:
        from server.accel import wire
    except ImportError:  # installed without a C compiler
        return None
    return wire.wire_encoder(plan, slow)
