"""Settings, read from the environment (and `.env`), validated at start-up.

Production refuses to start when a required secret is missing, with one line per
problem. Development mode (`--dev` or `APP_ENV=development`, nothing else) needs nothing:
it generates secrets once and keeps them under `var/` so tokens minted yesterday still
verify today. It refuses, in one line, to run with production settings (contract §10):
its harness mints admin tokens for anyone, signed with the configured client secret.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

VAR_DIR = Path("var")
VAR_DIR_ENV = "VAR_DIR"  # where the CLI keeps development state; default ./var (server/__main__)
DEV_SECRETS_FILE = "dev-secrets.json"
DEV_CLIENT_ID = "dev-client-id"
DEV_APP_ID = 10000
DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
# Settings whose value may hold a secret: a problem with one never echoes what was given.
SECRET_FIELDS = {"database_url", "monday_client_secret", "monday_signing_secret", "encryption_keys"}


class SettingsError(Exception):
    """Raised when the configuration cannot run the server; `problems` has one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def split_secrets(raw: SecretStr | None) -> list[str]:
    """A comma-separated secret list, newest first, blanks dropped."""
    if raw is None:
        return []
    return [part.strip() for part in raw.get_secret_value().split(",") if part.strip()]


class Settings(BaseSettings):
    """Every setting of contract §2 (and the delivery knobs of the scaling issue)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    app_env: Literal["development", "production"] = "production"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_base_url: str = ""
    database_url: str = "sqlite+aiosqlite:///var/monday-notify.db"
    monday_client_id: str = ""
    monday_client_secret: SecretStr | None = None
    monday_signing_secret: SecretStr | None = None
    monday_app_id: int | None = Field(default=None, ge=1)
    monday_api_url: str = "https://api.monday.com/v2"
    monday_api_version: str = "2026-07"
    monday_oauth_authorize_url: str = "https://auth.monday.com/oauth2/authorize"
    monday_oauth_token_url: str = "https://auth.monday.com/oauth2/token"  # noqa: S105 (a URL)
    encryption_keys: SecretStr | None = None
    jwt_leeway_seconds: int = Field(default=10, ge=0, le=60)
    frame_ancestors: str = "https://*.monday.com https://*.monday.app"
    monday_timeout_seconds: float = Field(default=15.0, gt=0, le=3600)
    max_token_bytes: int = Field(default=8192, ge=256)
    log_format: Literal["json", "text", "auto"] = "auto"
    # The server process' event loop (server/http/event_loop.py).
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    migrate_on_start: bool = True
    # Where the CLI keeps development state (VAR_DIR_ENV; "" is ./var). A setting like the
    # others, so `.env` can hold it: `.env` is read from the current directory, never from here.
    var_dir: str = ""
    # Delivery (contract §6 retries; hardened by the delivery-at-scale work).
    delivery_poll_seconds: float = Field(default=1.0, gt=0, le=3600)
    delivery_max_attempts: int = Field(default=8, ge=1)
    delivery_batch_size: int = Field(default=25, ge=1, le=100)
    delivery_lease_seconds: int = Field(default=60, ge=5)
    delivery_concurrency: int = Field(default=10, ge=1)
    send_rate_per_minute: int = Field(default=600, ge=0)
    # Rows of one user that may wait to be sent (paced) before a send is refused (§11).
    send_backlog_per_user: int = Field(default=10_000, ge=0)
    # Slow clients (contract §10): a request head must arrive within this many seconds of the
    # connection (or of its first byte), and its body within this many of the head.
    request_head_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    request_body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Retention of an uninstalled account's data (monday's marketplace rule: 10 days).
    uninstall_retention_days: int = Field(default=10, ge=0)
    # A ledger read is stopped past this (storage/read_budget.py); a request's reads share 2x.
    ledger_read_seconds: float = Field(default=2.0, gt=0, le=60)
    # Not a setting: read only so that the old, undocumented `DEV_MODE=1` is refused rather
    # than silently ignored (development mode is `--dev` or `APP_ENV=development`).
    dev_mode: str | None = Field(default=None, exclude=True, repr=False)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        # Caught here, so a typo is one line at start-up rather than a traceback from the engine.
        try:
            driver = make_url(value).drivername
        except ArgumentError:
            driver = ""
        if driver not in DATABASE_DRIVERS:
            raise ValueError(
                "must be sqlite+aiosqlite:///path/to/file.db or "
                "postgresql+asyncpg://user:password@host:port/database"
            )
        return value

    @field_validator(
        "public_base_url",
        "monday_api_url",
        "monday_oauth_authorize_url",
        "monday_oauth_token_url",
    )
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        # A typo here started a server that advertised (manifest, OAuth redirect) or called a
        # URL that cannot work; a send then ended `unknown` though nothing left the process.
        if value == "":
            return value  # PUBLIC_BASE_URL: derived from HOST and PORT
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 (raises for a port that is not a number from 0 to 65535)
        except ValueError:
            raise ValueError("must be an absolute http:// or https:// URL (bad port)") from None
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or any(ch.isspace() for ch in value)
            or parts.query
            or parts.fragment
        ):
            raise ValueError("must be an absolute http:// or https:// URL, without ?query or #")
        return value

    @field_validator("frame_ancestors")
    @classmethod
    def _sources(cls, value: str) -> str:
        # Written into the Content-Security-Policy header as is: a `;` would start another
        # directive (`x; script-src *` weakened every page's policy).
        if not value.strip() or any(ch in value for ch in ';,\r\n"') or not value.isprintable():
            raise ValueError(
                "must be CSP sources separated by spaces (e.g. https://*.monday.com), "
                "without ; or ,"
            )
        return value

    @field_validator("monday_app_id", mode="before")
    @classmethod
    def _blank_app_id(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def is_dev(self) -> bool:
        return self.app_env == "development"

    @property
    def base_url(self) -> str:
        """The URL monday reaches us at, without a trailing slash."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    @property
    def client_secrets(self) -> list[str]:
        return split_secrets(self.monday_client_secret)

    @property
    def signing_secrets(self) -> list[str]:
        return split_secrets(self.monday_signing_secret)

    @property
    def fernet_keys(self) -> list[str]:
        return split_secrets(self.encryption_keys)

    def problems(self) -> list[str]:
        """What stops this configuration from running in production, one line each."""
        found: list[str] = []
        if not self.monday_client_id:
            found.append(
                "MONDAY_CLIENT_ID is required: the app's client id from the Developer Center."
            )
        if not self.client_secrets:
            found.append(
                "MONDAY_CLIENT_SECRET is required: the app's client secret "
                "(comma-separated, newest first)."
            )
        if not self.fernet_keys:
            found.append(
                "ENCRYPTION_KEYS is required: run `monday-notify keys generate` and set the result."
            )
        for key in self.fernet_keys:
            try:
                Fernet(key.encode())
            except (ValueError, TypeError):
                found.append("ENCRYPTION_KEYS holds a value that is not a Fernet key.")
                break
        return found


def _load_dev_secrets(var_dir: Path) -> dict[str, str]:
    """Generate development secrets once and keep them, so minted tokens survive restarts.
    The folder is the owner's only (0700): it also holds the SQLite file, with installers'
    e-mails and every notification's text, which SQLite creates readable by all (0644)."""
    var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = var_dir / DEV_SECRETS_FILE
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    generated = {
        "client_secret": secrets.token_urlsafe(32),
        "signing_secret": secrets.token_urlsafe(32),
        "encryption_key": Fernet.generate_key().decode(),
    }
    path.write_text(json.dumps(generated, indent=2))
    path.chmod(0o600)
    return generated


DEV_MODE_REFUSED = (
    "DEV_MODE is not a setting: development mode is `serve --dev` or APP_ENV=development "
    "(and never with production secrets); remove DEV_MODE."
)
# In development mode, any of these set means a production configuration is loaded.
PRODUCTION_ONLY = (
    ("MONDAY_CLIENT_ID", "monday_client_id"),
    ("MONDAY_CLIENT_SECRET", "monday_client_secret"),
    ("MONDAY_SIGNING_SECRET", "monday_signing_secret"),
    ("ENCRYPTION_KEYS", "encryption_keys"),
)


def _remote_database(url: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """What points the PostgreSQL connection at a server not on this machine, as a setting
    name for a refusal; None for one on this machine (a developer's own) and for SQLite.

    The hosts are asyncpg's, in its order: SQLAlchemy passes a `host` query parameter on over
    the URL's host (`host=h1,h2` or `host=h1:p1&host=h2:p2`, or a socket directory); with
    neither, asyncpg reads PGHOST (comma-separated too); with none, a local socket."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if not parsed.get_backend_name().startswith("postgres"):
        return None
    query = parsed.query.get("host")
    if query:
        given = [query] if isinstance(query, str) else list(query)
        hosts, where = [h for part in given for h in part.split(",")], "DATABASE_URL"
    elif parsed.host:
        hosts, where = [parsed.host], "DATABASE_URL"
    else:
        hosts, where = environ.get("PGHOST", "").split(","), "PGHOST"
    return where if any(_remote_host(host) for host in hosts) else None


def _remote_host(token: str) -> bool:
    """One asyncpg host (`name`, `name:port`, `[v6]:port`, bare v6, a socket path) is remote."""
    host = token.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.split(":")[0]  # `name:port`; more colons are a bare IPv6 address
    if not host or host == "localhost" or host.startswith("/"):
        return False  # nothing given or a socket directory: this machine
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name other than localhost


def dev_refusal(settings: Settings) -> str | None:
    """Why development mode must not start with these settings, in one line (never a value)."""
    found: list[str] = []
    if "app_env" in settings.model_fields_set and settings.app_env == "production":
        found.append("APP_ENV=production")
    for env_name, field_name in PRODUCTION_ONLY:
        value = getattr(settings, field_name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value and str(value).strip():
            found.append(env_name)
    remote = _remote_database(settings.database_url)
    if remote is not None:
        found.append(f"{remote} (a PostgreSQL server on another host)")
    if not found:
        return None
    return (
        f"development mode refuses to run with production settings: {', '.join(found)} "
        "set; unset them for --dev / APP_ENV=development, or run in production mode."
    )


def load_settings(*, dev: bool = False, var_dir: Path = VAR_DIR, **overrides: Any) -> Settings:
    """Read and validate the settings; fill development defaults; raise `SettingsError`."""
    settings = Settings(**overrides)
    if settings.dev_mode is not None:
        raise SettingsError([DEV_MODE_REFUSED])
    if dev or settings.is_dev:
        refusal = dev_refusal(settings)
        if refusal is not None:
            raise SettingsError([refusal])
        settings = _with_dev_defaults(settings, var_dir)
    problems = settings.problems()
    if problems:
        raise SettingsError(problems)
    return settings


def _with_dev_defaults(settings: Settings, var_dir: Path) -> Settings:
    dev = _load_dev_secrets(var_dir)
    # `dev_refusal` made sure none of these was configured: development uses only its own.
    updates: dict[str, object] = {
        "app_env": "development",
        "monday_client_id": DEV_CLIENT_ID,
        "monday_client_secret": SecretStr(dev["client_secret"]),
        "monday_signing_secret": SecretStr(dev["signing_secret"]),
        "encryption_keys": SecretStr(dev["encryption_key"]),
    }
    if "database_url" not in settings.model_fields_set:  # the dev database lives beside its secrets
        updates["database_url"] = f"sqlite+aiosqlite:///{var_dir / 'monday-notify.db'}"
    if "monday_api_url" not in settings.model_fields_set:
        updates["monday_api_url"] = f"{settings.base_url}/dev/monday/v2"
    if "monday_oauth_token_url" not in settings.model_fields_set:
        updates["monday_oauth_token_url"] = f"{settings.base_url}/dev/monday/oauth2/token"
    if "monday_oauth_authorize_url" not in settings.model_fields_set:
        updates["monday_oauth_authorize_url"] = f"{settings.base_url}/dev/monday/oauth2/authorize"
    if "log_format" not in settings.model_fields_set:
        updates["log_format"] = "text"
    return settings.model_copy(update=updates)


def validation_problems(error: ValidationError) -> list[str]:
    """One line per invalid setting: the variable, what is wrong, what was given (if not secret)."""
    lines = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else "configuration"
        variable = field.upper()
        message = problem["msg"].removeprefix("Value error, ")
        given = "" if field in SECRET_FIELDS else f"={problem['input']!r}"
        lines.append(
            f"{variable}{given} is invalid: {message[:1].lower()}{message[1:]}; fix or unset it."
        )
    return lines
