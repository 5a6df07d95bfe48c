"""The realtime socket's limits and timings (contract §13); tests pass short ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

COLLECTION = "directus_notifications"


@dataclass(frozen=True, slots=True)
class RealtimeLimits:
    auth_timeout: float = 10.0  # seconds to send the first `auth`
    expiry_grace: float = 10.0  # seconds a connection with an expired token keeps its subs
    ping_interval: float = 30.0  # the server pings this often; a silent client is closed
    max_subscriptions: int = 20  # per connection
    max_connections_per_user: int = 10  # per instance
    max_message_bytes: int = 64 * 1024  # a larger client message closes with 1009
    max_pending_changes: int = 256  # changes waiting for one connection before it is closed
    max_pending_messages: int = 256  # messages waiting to be written to one connection
    ids_per_read: int = 100  # ids re-read in one statement per subscription
    clock: Callable[[], float] = field(default=time.time)
