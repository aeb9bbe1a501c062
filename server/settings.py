"""Server settings with safe defaults; the CLI fills them from flags and environment variables."""

from __future__ import annotations

import dataclasses
from typing import Any

MiB = 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class ServerSettings:
    """Transport settings of one server.

    ``grace`` is how long in-flight RPCs may run after a shutdown starts before they are
    cancelled. Message size limits protect memory from a single oversized request; a larger
    request is refused with RESOURCE_EXHAUSTED by grpc before our code sees it.
    """

    grace: float = 10.0
    max_receive_message_bytes: int = 4 * MiB
    max_send_message_bytes: int = 16 * MiB
    max_metadata_bytes: int = 16 * 1024
    extra_options: tuple[tuple[str, Any], ...] = ()

    def grpc_options(self) -> list[tuple[str, Any]]:
        """The grpc channel arguments these settings stand for."""
        return [
            ("grpc.max_receive_message_length", self.max_receive_message_bytes),
            ("grpc.max_send_message_length", self.max_send_message_bytes),
            ("grpc.max_metadata_size", self.max_metadata_bytes),
            # One process owns the port unless --workers asks for sharing explicitly.
            ("grpc.so_reuseport", 0),
            *self.extra_options,
        ]
