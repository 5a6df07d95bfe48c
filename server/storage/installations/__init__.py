"""SQL adapters of the installation ports (`server/installations/ports.py`)."""

from server.storage.installations.accounts import (
    NEXT_REVISION,
    SqlInstallations,
    bump_revision,
    dialect_insert,
    read_installation,
    upsert_installation,
)
from server.storage.installations.credentials import SqlCredentials
from server.storage.installations.oauth_states import SqlOAuthStates

__all__ = [
    "NEXT_REVISION",
    "SqlCredentials",
    "SqlInstallations",
    "SqlOAuthStates",
    "bump_revision",
    "dialect_insert",
    "read_installation",
    "upsert_installation",
]
