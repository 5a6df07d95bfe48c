"""`PATCH /installation`'s body: any subset of `sender_policy`, `quiet_hours`,
`digest_window_seconds` (contract §12). Kept apart from `installations.py` so the §12 keys
are one additive module; the installation service writes them (`change_settings`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from server.installations.model import SettingsChange
from server.notifications.schedule_rules import MAX_DIGEST_WINDOW_SECONDS
from server.sender import SenderPolicy

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

    def change(self) -> SettingsChange:
        """The settings the body names (absent keys keep their stored value)."""
        quiet = self.quiet_hours
        return SettingsChange(
            sender_policy=self.sender_policy,
            set_quiet_hours="quiet_hours" in self.model_fields_set,
            quiet_hours=(quiet.start, quiet.end) if quiet else None,
            digest_window_seconds=self.digest_window_seconds,
        )
