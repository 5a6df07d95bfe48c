"""Rows and audit entries the notification store tests insert (account 1001, sender 11)."""

from __future__ import annotations

from server.notifications.model import AuditEntry, NewNotification
from server.sender import SenderDecision

ACCOUNT = "1001"
SENDER = "11"


def new(
    recipient: str = "12", *, transport: str = "server", credential_owner: str = SENDER
) -> NewNotification:
    return NewNotification(
        recipient=recipient,
        message=f"hello {recipient}",
        collection="Project",
        item="5001",
        subject=None,
        sent_as="app",
        transport="seamless" if transport == "seamless" else "server",
        credential_owner=credential_owner,
    )


def audit() -> AuditEntry:
    decision = SenderDecision("app", "server", SENDER, "oauth", "the caller's own app OAuth token")
    return AuditEntry(ACCOUNT, SENDER, "rest", None, "app", "decided", decision.reason, decision)
