"""Structured logging that never prints a token, key or JWT."""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
account_id_var: ContextVar[str | None] = ContextVar("account_id", default=None)

# JWTs (three base64url parts), Fernet tokens, Authorization values and anything labelled
# as a token/key/secret. Over-redacting a log line is cheap; leaking a credential is not.
_PATTERNS = [
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    re.compile(r"gAAAAA[A-Za-z0-9_=-]{20,}"),
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer\s+)?[^\s'\",}]+"),
    re.compile(
        r"(?i)((?:api_key|apikey|access_token|refresh_token|client_secret|token|secret|code|state)"
        r"['\"]?\s*[:=]\s*['\"]?)[^\s'\",}&]+"
    ),
]


def redact(text: str) -> str:
    """Replace anything that looks like a credential with `[REDACTED]`."""
    if ":" not in text and "=" not in text and "eyJ" not in text and "gAAAAA" not in text:
        # None of the patterns can match (the last two need a `:` or `=`): most log lines,
        # every access line among them, skip the four regular expressions.
        return text
    text = _PATTERNS[0].sub("[REDACTED-JWT]", text)
    text = _PATTERNS[1].sub("[REDACTED]", text)
    text = _PATTERNS[2].sub(lambda m: f"{m.group(1)}[REDACTED]", text)
    return _PATTERNS[3].sub(lambda m: f"{m.group(1)}[REDACTED]", text)


class RedactingJsonFormatter(logging.Formatter):
    """One JSON object a line, with the request and account ids of the current request."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if (request_id := request_id_var.get()) is not None:
            entry["request_id"] = request_id
        if (account_id := account_id_var.get()) is not None:
            entry["account_id"] = account_id
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        try:
            # orjson: a line a request (or two, with the delivery line) is the stdlib
            # encoder's biggest caller on the send path.
            return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # what orjson refuses (an int over 64 bits, a lone surrogate)
            return json.dumps(entry, default=str)


class RedactingTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        request_id = request_id_var.get()
        return f"{line} [req={request_id}]" if request_id else line


def configure_logging(fmt: str, level: int = logging.INFO) -> None:
    """Install one handler on the root logger, JSON or human text."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(RedactingJsonFormatter())
    else:
        handler.setFormatter(
            RedactingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Neither format prints the thread, the process or the caller's file and line: the
    # logging module's "Optimization" switches spare each record those look-ups (the access
    # line is written on every request; the record cost more than its formatting).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    # aiohttp's access log prints the raw request line, query string included (?sessionToken=).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Python warnings (PyJWT's about a short HMAC secret, say) become log records: JSON lines
    # in production, redacted like the rest, instead of plain text on stderr.
    logging.captureWarnings(True)
