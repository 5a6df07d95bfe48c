"""The realtime side of one instance: the hub, the change bus and the limits, built once by
the composition root (which hands `bus.publish` to the stores)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from server.appkeys import ENGINE, SETTINGS
from server.realtime.bus import ChangeBus, asyncpg_dsn
from server.realtime.hub import Hub
from server.realtime.limits import RealtimeLimits
from server.realtime.shared_reads import SharedReads


@dataclass(frozen=True, slots=True)
class Realtime:
    hub: Hub
    bus: ChangeBus
    limits: RealtimeLimits
    reads: SharedReads  # one read of a change for identical subscriptions


REALTIME = web.AppKey("realtime", Realtime)
# Set before the app starts to change the limits (tests use short timeouts).
REALTIME_LIMITS = web.AppKey("realtime_limits", RealtimeLimits)


def build(app: web.Application) -> Realtime:
    hub = Hub()
    bus = ChangeBus(
        app[ENGINE],
        hub.deliver,
        asyncpg_dsn(app[SETTINGS].database_url),
        listening=hub.has_listeners,
    )
    realtime = Realtime(hub, bus, app.get(REALTIME_LIMITS) or RealtimeLimits(), SharedReads())
    app[REALTIME] = realtime
    return realtime
