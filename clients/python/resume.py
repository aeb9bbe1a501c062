"""When and from where a watch reconnects by itself: the policy both clients share.

A watch ended with UNAVAILABLE (a drain, a worker restarting, a connection lost) or dropped for falling
behind (RESOURCE_EXHAUSTED ``SUBSCRIBER_FELL_BEHIND``) is opened again with ``after_sequence`` = the
last sequence it yielded, so the server replays what was missed; events at
or below that sequence are dropped, so the user sees no gap and no duplicate.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import grpc

from clients.python.models import FileEvent, FileServiceError
from demo.files.v1 import files_pb2

SUBSCRIBED = "x-subscribed"
"""The response header that says the server's feed is live."""
START_HEADER = "x-resume-after-sequence"
"""The response header that names the sequence the live feed starts after."""
RESUME_KEY = "resume_after_sequence"
"""The ErrorInfo metadata of a drain's UNAVAILABLE: the sequence to resume after."""
FELL_BEHIND = "SUBSCRIBER_FELL_BEHIND"
"""The ErrorInfo reason of a watch dropped for reading too slowly (RESOURCE_EXHAUSTED)."""


@dataclasses.dataclass(frozen=True)
class Resume:
    """Reconnect after UNAVAILABLE or falling behind, waiting ``first_delay`` seconds then twice as
    long each time (at most ``max_delay``); give up (raise the error) once ``give_up_after`` seconds
    have passed, by the clock, since the first failure without a subscription since."""

    first_delay: float = 0.1
    max_delay: float = 2.0
    give_up_after: float = 30.0


def watch_query(after_sequence: int | None) -> files_pb2.WatchFileEventsQuery:
    """The request of a watch after ``after_sequence``; ``None`` leaves the field out: from now on."""
    if after_sequence is None:
        return files_pb2.WatchFileEventsQuery()
    return files_pb2.WatchFileEventsQuery(after_sequence=after_sequence)


def resumable(failure: FileServiceError) -> bool:
    """True for the ends a watch reopens after: UNAVAILABLE, or dropped for falling behind (the
    reopened watch replays what it missed)."""
    if failure.code is grpc.StatusCode.UNAVAILABLE:
        return True
    return failure.code is grpc.StatusCode.RESOURCE_EXHAUSTED and failure.reason == FELL_BEHIND


def resume_after(last_sequence: int | None, error: FileServiceError) -> int | None:
    """The ``after_sequence`` to reconnect with after ``error`` (``None``: from now on, nothing being
    known of where the watch was).

    With no event seen yet, the drain's ``resume_after_sequence`` (where the server had started) is
    taken, so the events of the reconnection's gap are replayed too."""
    if last_sequence is None and error.metadata.get(RESUME_KEY, "").isdigit():
        return int(error.metadata[RESUME_KEY])
    return last_sequence


def started_after(last_sequence: int | None, headers: object) -> int | None:
    """The sequence to resume after once a watch is subscribed: ``last_sequence``, or where the server's
    feed started if the watch began "from now on", so a connection lost before the first event leaves
    no gap (0 included: an empty stream's watch resumes from the first event)."""
    start = dict(headers or ()).get(START_HEADER, "")  # type: ignore[call-overload]
    if last_sequence is None and isinstance(start, str) and start.isdigit():
        return int(start)
    return last_sequence


class Place:
    """Where one watch is and how much reconnecting it has left: the decisions of the sync and the async
    stream, which only differ in how they wait."""

    def __init__(
        self, after_sequence: int | None, resume: Resume | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.last_sequence = after_sequence
        self.subscribed = False
        self._resume = resume
        self._clock = clock
        self._failing_since: float | None = None
        self._delay = 0.0

    def started(self, headers: object) -> bool:
        """Take a (re)opened watch's response headers; True when its feed is live (``x-subscribed``),
        which also gives a later failure the whole reconnection budget again."""
        self.last_sequence = started_after(self.last_sequence, headers)
        self.subscribed = SUBSCRIBED in dict(headers or ())  # type: ignore[call-overload]
        if self.subscribed:
            self._failing_since = None
        return self.subscribed

    def fresh(self, event: FileEvent) -> bool:
        """True for an event after the last one seen, which it becomes (a replay may repeat some)."""
        if self.last_sequence is not None and event.sequence <= self.last_sequence:
            return False
        self.last_sequence = event.sequence
        return True

    def reconnect(self, failure: FileServiceError) -> float | None:
        """The wait before reopening after ``failure``, with ``last_sequence`` set to where to resume
        after; None: give up and raise ``failure``."""
        self.subscribed = False
        if self._resume is None or not resumable(failure):
            return None
        now = self._clock()
        if self._failing_since is None:
            self._failing_since, self._delay = now, self._resume.first_delay
        else:
            self._delay = min(self._delay * 2, self._resume.max_delay)
        if now + self._delay - self._failing_since > self._resume.give_up_after:
            return None
        self.last_sequence = resume_after(self.last_sequence, failure)
        return self._delay


RESUME = Resume()
"""The default policy of ``watch``."""
