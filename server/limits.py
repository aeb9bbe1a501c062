"""Admission control for application streams.

grpc's ``maximum_concurrent_rpcs`` is one global counter that also refuses health checks and
reflection, so an overloaded server would look dead to its orchestrator. This limit counts
application streams only, and refuses the one past it at once with RESOURCE_EXHAUSTED
instead of queueing it: a client that is told "busy" can go elsewhere; one that waits in a
hidden queue just times out later.
"""

from __future__ import annotations


class StreamLimit:
    """Counts streams in flight against an optional limit (event-loop thread only)."""

    __slots__ = ("active", "limit", "refused")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.active = 0
        self.refused = 0

    def try_enter(self) -> bool:
        """Admit one more stream if below the limit; the caller must ``leave()`` if admitted."""
        if self.limit is not None and self.active >= self.limit:
            self.refused += 1
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        self.active -= 1
