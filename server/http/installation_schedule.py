"""`PATCH /installation`'s body (any subset of `sender_policy`, `quiet_hours`,
`digest_window_seconds`: contract §12) and the account's schedule settings as the API shows
them. Kept apart from `installations.py` so the §12 keys are one additive module."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import utcnow
from server.installations.store import read_installation, upsert_installation
from server.notifications.schedule_rules import MAX_DIGEST_WINDOW_SECONDS
from server.sender import SenderPolicy
from server.storage.tables import installations

HHMM = Annotated[
    str,
    Field(
        strict=True,
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description='24-hour local time "HH:MM"',
    ),
]


class QuietHoursBody(BaseModel):
    """Start inclusive, end exclusive, in each recipient's own time zone; may cross midnight."""

    model_config = ConfigDict(extra="forbid")

    start: HHMM
    end: HHMM

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHoursBody:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class InstallationPatch(BaseModel):
    """Any subset of the account's settings (admins only)."""

    model_config = ConfigDict(extra="forbid")

    sender_policy: SenderPolicy | None = None
    quiet_hours: Annotated[
        QuietHoursBody | None, Field(description="null turns quiet hours off")
    ] = None
    digest_window_seconds: Annotated[
        int | None, Field(strict=True, ge=0, le=MAX_DIGEST_WINDOW_SECONDS)
    ] = None

    @model_validator(mode="before")
    @classmethod
    def _something(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if not data:
                raise ValueError(
                    "name at least one of sender_policy, quiet_hours, digest_window_seconds"
                )
        return data

    @field_validator("sender_policy", "digest_window_seconds", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("can't be null")
        return value

    def schedule_values(self) -> dict[str, Any]:
        """The installation columns of the §12 keys present in the body."""
        values: dict[str, Any] = {}
        if "quiet_hours" in self.model_fields_set:
            quiet = self.quiet_hours
            values["quiet_hours_start"] = quiet.start if quiet else None
            values["quiet_hours_end"] = quiet.end if quiet else None
        if self.digest_window_seconds is not None:
            values["digest_window_seconds"] = self.digest_window_seconds
        return values


async def store_schedule(engine: AsyncEngine, account_id: str, values: dict[str, Any]) -> None:
    """Write the §12 columns (an account never heard of gets a row that is not installed,
    as for the sender policy)."""
    if not values:
        return
    now = utcnow()
    async with engine.begin() as conn:
        existing = await read_installation(conn, account_id)
        extra = {"installed": False} if existing is None else {}
        await upsert_installation(conn, account_id, {**values, **extra}, now=now)


async def schedule_view(engine: AsyncEngine, account_id: str) -> dict[str, Any]:
    """`quiet_hours` ({"start", "end"} or null) and `digest_window_seconds`."""
    c = installations.c
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(c.quiet_hours_start, c.quiet_hours_end, c.digest_window_seconds).where(
                    c.account_id == account_id
                )
            )
        ).first()
    if row is None:
        return {"quiet_hours": None, "digest_window_seconds": 0}
    quiet = {"start": row[0], "end": row[1]} if row[0] and row[1] else None
    return {"quiet_hours": quiet, "digest_window_seconds": int(row[2] or 0)}
