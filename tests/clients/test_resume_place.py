"""The watch's reconnection decisions (clients/python/resume.py), shared by the sync and async SDK."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc

from clients.python.models import FileEvent, FileServiceError
from clients.python.resume import RESUME_KEY, START_HEADER, SUBSCRIBED, Place, Resume

UNAVAILABLE = FileServiceError(grpc.StatusCode.UNAVAILABLE, "draining")
LIVE = ((SUBSCRIBED, "true"),)
RESUME_POLICY = Resume(first_delay=0.01)


def event(sequence: int) -> FileEvent:
    return FileEvent(sequence=sequence, kind="file_uploaded", file_id="f", occurred_at=datetime.now(UTC))


def test_only_events_after_the_last_one_seen_are_fresh() -> None:
    place = Place(3, None)
    assert [s for s in (2, 3, 4, 4, 6) if place.fresh(event(s))] == [4, 6]
    assert place.last_sequence == 6


def test_a_watch_without_a_policy_or_with_another_code_gives_up() -> None:
    assert Place(5, None).reconnect(UNAVAILABLE) is None
    denied = FileServiceError(grpc.StatusCode.PERMISSION_DENIED, "no")
    assert Place(5, Resume()).reconnect(denied) is None


def test_a_watch_dropped_for_falling_behind_resumes_but_other_resource_exhausted_gives_up() -> None:
    behind = FileServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "subscriber fell behind", reason="SUBSCRIBER_FELL_BEHIND"
    )
    place = Place(5, Resume(first_delay=1.0))
    assert place.reconnect(behind) == 1.0 and place.last_sequence == 5
    shed = FileServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many streams")
    assert Place(5, Resume()).reconnect(shed) is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_is_wall_clock_time_attempts_included_and_comes_back_once_the_feed_is_live() -> None:
    clock = Clock()
    place = Place(7, Resume(first_delay=1.0, max_delay=2.0, give_up_after=10.0), clock=clock)
    waits = []
    while (delay := place.reconnect(UNAVAILABLE)) is not None:
        waits.append(delay)
        clock.now += delay + 2.5  # the wait, then an attempt that takes 2.5 s to fail
    assert waits == [1.0, 2.0, 2.0]  # the last attempt begins 10 s after the first failure, not 20 s
    assert place.last_sequence == 7
    assert not place.started(())  # refused before its feed went live: the budget stays spent
    assert place.reconnect(UNAVAILABLE) is None
    assert place.started(LIVE)
    assert place.reconnect(UNAVAILABLE) == 1.0


def test_before_the_first_event_it_resumes_where_the_feed_started() -> None:
    place = Place(None, RESUME_POLICY)  # from now on
    assert place.started(((START_HEADER, "41"), *LIVE)) and place.last_sequence == 41
    drained = Place(None, RESUME_POLICY)
    stated = FileServiceError(grpc.StatusCode.UNAVAILABLE, "draining", metadata={RESUME_KEY: "9"})
    assert drained.reconnect(stated) is not None and drained.last_sequence == 9


def test_a_watch_begun_on_an_empty_stream_resumes_from_the_first_event_not_from_now() -> None:
    place = Place(None, RESUME_POLICY)
    assert place.started(((START_HEADER, "0"), *LIVE)) and place.last_sequence == 0
    assert place.reconnect(UNAVAILABLE) is not None and place.last_sequence == 0  # sent as an explicit 0
    replay = Place(0, RESUME_POLICY)  # asked for everything: the feed's start does not move it
    assert replay.started(((START_HEADER, "41"), *LIVE)) and replay.last_sequence == 0
    unknown = Place(None, RESUME_POLICY)  # lost before the server said anything: from now on again
    assert unknown.reconnect(UNAVAILABLE) is not None and unknown.last_sequence is None
