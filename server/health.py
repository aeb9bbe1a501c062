"""The standard ``grpc.health.v1.Health`` service for a grpc.aio server.

Load balancers, Kubernetes probes and ``grpc_health_probe`` ask this service whether the server (the ``""``
service) or one named service may receive traffic. The answer combines three things:

* a server-wide switch: NOT_SERVING until :meth:`Health.set_serving` is called once the server has started,
  and NOT_SERVING again the moment :meth:`Health.set_not_serving` starts a graceful shutdown;
* a status per service that the application may set (:meth:`Health.set`);
* dependency checks (:meth:`Health.add_check`), awaited on every ``Check`` with a timeout, so health reports
  what is true now rather than a flag someone must remember to flip (grpclib's idea).

We do not reuse ``grpc_health.v1._async.HealthServicer``: it is a private module, its setters are coroutines
(awkward from a signal handler or synchronous start-up code) and it has no notion of dependency checks.

Health is served by its own generic handler, so it keeps answering while application RPCs are shed or drained,
as long as the load-shedding layer exempts :data:`SERVICE_NAME`.
All methods must be called from the event loop's thread (``loop.add_signal_handler`` callbacks qualify).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2

from server.errors import guarded

__all__ = ["OVERALL", "SERVICE_NAME", "Health", "HealthCheck", "ServingStatus"]

SERVICE_NAME = "grpc.health.v1.Health"
OVERALL = ""
"""The service name that stands for the whole server in a ``HealthCheckRequest``."""

HealthCheck = Callable[[], Awaitable[bool]]
"""An async dependency check: True means healthy; False, an exception or a timeout means NOT_SERVING."""

_log = logging.getLogger(__name__)


class ServingStatus(enum.IntEnum):
    """``grpc.health.v1.HealthCheckResponse.ServingStatus``, typed (the generated module is not)."""

    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2
    SERVICE_UNKNOWN = 3


@dataclass(eq=False)
class _Check:
    name: str
    check: HealthCheck
    healthy: bool | None = None  # last result, to log transitions rather than every probe
    running: asyncio.Future[bool] | None = field(default=None, repr=False)


class Health:
    """Serves ``grpc.health.v1.Health`` (Check and Watch) for the overall server and each named service.

    Until :meth:`set_serving` is called every known service reports NOT_SERVING. ``Check`` of a name that is
    neither a service nor a check name fails with NOT_FOUND; ``Watch`` of such a name streams SERVICE_UNKNOWN
    and keeps watching, as the health protocol asks.
    """

    def __init__(
        self,
        service_names: Iterable[str] = (),
        *,
        check_timeout: float = 1.0,
        watch_interval: float = 5.0,
    ) -> None:
        """``check_timeout`` bounds each dependency check; ``watch_interval`` is how often ``Watch`` re-runs
        the checks that apply to the watched service (status changes made through this object are pushed
        immediately, whatever the interval)."""
        self._statuses: dict[str, ServingStatus] = {OVERALL: ServingStatus.SERVING}
        for name in service_names:
            self._statuses[name] = ServingStatus.SERVING
        self._serving = False
        self._checks: dict[str, list[_Check]] = {}
        self._check_timeout = check_timeout
        self._watch_interval = watch_interval
        self._changed = asyncio.Event()
        self._ending = False

    # -- the API the application drives -------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a ``Check`` answers for: ``""``, the services, the named checks."""
        return tuple(self._statuses)

    @staticmethod
    def service_names_served() -> tuple[str, ...]:
        """The gRPC services :meth:`register` adds (to list them in reflection)."""
        return (SERVICE_NAME,)

    def register(self, server: grpc.aio.Server) -> None:
        """Add the Health service to ``server`` (before it starts)."""
        handlers = self.method_handlers()
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)])

    def method_handlers(self) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        """The handlers of Check and Watch by method name (the HTTP port serves the same ones)."""
        return {
            # Decoded by `guarded`, so bad bytes get INVALID_ARGUMENT, not grpc's exception text.
            "Check": grpc.unary_unary_rpc_method_handler(
                guarded(self._rpc_check, health_pb2.HealthCheckRequest.FromString),
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            ),
            "Watch": grpc.unary_stream_rpc_method_handler(
                guarded(self._rpc_watch, health_pb2.HealthCheckRequest.FromString),
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            ),
        }

    def set_serving(self) -> None:
        """Turn the server-wide switch on: services report their own status again (call once started)."""
        self._serving = True
        self._notify()

    def set_not_serving(self) -> None:
        """Turn the server-wide switch off: every service reports NOT_SERVING at once and every Watch is told.

        The first step of a graceful shutdown, so load balancers stop sending traffic before RPCs are refused.
        Per-service statuses are kept, so a later :meth:`set_serving` restores them.
        """
        self._serving = False
        self._notify()

    def end_watches(self) -> None:
        """End every Watch stream (OK) once it has sent the current status.

        Called at shutdown right after :meth:`set_not_serving`: each watcher first receives
        NOT_SERVING, then its stream ends, so an endless health Watch does not hold the server
        for the whole grace period.
        """
        self._ending = True
        self._notify()

    def recheck(self) -> None:
        """Make every Watch re-run its checks now: a dependency reported that it changed."""
        self._notify()

    def set(self, service: str, status: ServingStatus | int) -> None:
        """Set one service's own status (a new name becomes known to Check)."""
        self._statuses[service] = ServingStatus(status)
        self._notify()

    def add_check(self, name: str, check: HealthCheck) -> None:
        """Make ``check`` part of the health of ``name`` and of the overall ``""`` status.

        ``name`` may be a service (the check gates that service), ``""`` (a dependency of the whole server: it
        gates every service) or any other name, such as ``"postgres"``, which then becomes a name clients can
        Check on its own. The check runs on each Check with the configured timeout; False, an exception or
        a timeout make the affected statuses NOT_SERVING.
        """
        self._statuses.setdefault(name, ServingStatus.SERVING)
        self._checks.setdefault(name, []).append(_Check(name=name, check=check))
        self._notify()

    async def status(self, service: str) -> ServingStatus | None:
        """The status a Check of ``service`` answers now, running its checks; None for an unknown name."""
        own = self._statuses.get(service)
        if own is None:
            return None
        if not self._serving:
            return ServingStatus.NOT_SERVING
        if own is not ServingStatus.SERVING:
            return own
        checks = self._checks_for(service)
        if checks and not all(await asyncio.gather(*(self._run(c) for c in checks))):
            return ServingStatus.NOT_SERVING
        return ServingStatus.SERVING

    # -- internals ----------------------------------------------------------------------------------------

    def _notify(self) -> None:
        # Watchers wait on the current event; replacing it after set() means each change wakes each one once.
        self._changed.set()
        self._changed = asyncio.Event()

    def _checks_for(self, service: str) -> list[_Check]:
        if service == OVERALL:
            return [c for checks in self._checks.values() for c in checks]
        return [*self._checks.get(OVERALL, ()), *self._checks.get(service, ())]

    async def _run(self, check: _Check) -> bool:
        # Concurrent Checks share one evaluation, so a burst of probes does not multiply the load on the
        # dependency; shield() keeps a cancelled caller from cancelling the others' shared evaluation.
        if check.running is None or check.running.done():
            check.running = asyncio.ensure_future(self._evaluate(check))
        return await asyncio.shield(check.running)

    async def _evaluate(self, check: _Check) -> bool:
        try:
            async with asyncio.timeout(self._check_timeout):
                healthy = bool(await check.check())
            problem = "returned False"
        except TimeoutError:
            healthy, problem = False, f"timed out after {self._check_timeout}s"
        except Exception as exc:
            healthy, problem = False, f"raised {exc!r}"
        if healthy != check.healthy:
            if healthy:
                _log.info("health check %r passes again", check.name)
            else:
                _log.warning("health check %r %s: reporting NOT_SERVING", check.name, problem)
        check.healthy = healthy
        return healthy

    async def _rpc_check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        status = await self.status(request.service)
        if status is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"unknown service {request.service!r}; known: {sorted(self._statuses)}",
            )
        return health_pb2.HealthCheckResponse(status=status)

    async def _rpc_watch(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        # Runs until the client cancels or the server stops; both cancel this task.
        service: str = request.service
        last: ServingStatus | None = None
        while True:
            changed = self._changed  # taken before reading the status, so no change can slip between
            status = await self.status(service)
            if status is None:
                status = ServingStatus.SERVICE_UNKNOWN
            if status != last:
                await context.write(health_pb2.HealthCheckResponse(status=status))
                last = status
            if self._ending:
                return
            checked = self._serving and service in self._statuses and self._checks_for(service)
            poll = self._watch_interval if checked else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=poll)
