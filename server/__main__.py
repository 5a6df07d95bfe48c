"""The `monday-notify` command: serve, mint-token, db upgrade, keys, manifest."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from cryptography.fernet import Fernet
from pydantic import ValidationError

from server.http.listen_check import listen_problem, port_problem
from server.ids import InvalidMondayId, monday_id
from server.logs import configure_logging
from server.settings import (
    DEV_SECRETS_FILE,
    VAR_DIR,
    VAR_DIR_ENV,
    Settings,
    SettingsError,
    dev_refusal,
    load_settings,
    validation_problems,
)
from server.token_mint import mint_integration, mint_lifecycle, mint_session
from server.tokens import LIFECYCLE_PATH


def _refuse(*problems: str) -> NoReturn:
    """Contract §14: one line per configuration problem on stderr, exit 2, no traceback."""
    for problem in problems:
        print(f"monday-notify: {problem}", file=sys.stderr)
    raise SystemExit(2)


def _refuse_if(problems: Iterable[str]) -> None:
    found = list(problems)
    if found:
        _refuse(*found)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (not the usage block plus the error)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _monday_id(value: str) -> str:
    """An account or user id as monday issues them (the one rule of server/ids.py)."""
    try:
        return monday_id(value)
    except InvalidMondayId:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a monday id: give digits without a leading zero, e.g. 1001"
        ) from None


def _var_dir(settings: Settings) -> Path:
    """Development state (secrets, SQLite file): VAR_DIR (the environment, else `.env` of the
    current directory, like every setting), else ./var of the current directory."""
    return Path(settings.var_dir or VAR_DIR)


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    var_dir = _var_dir(_plain_settings(args))
    try:
        return load_settings(dev=getattr(args, "dev", False), var_dir=var_dir, **overrides)
    except SettingsError as error:
        _refuse(*error.problems)
    except ValidationError as error:
        _refuse(*validation_problems(error))


def _plain_settings(args: argparse.Namespace) -> Settings:
    """The environment's settings, validated, with no secret required and none generated."""
    try:
        settings = Settings()
    except ValidationError as error:
        _refuse(*validation_problems(error))
    if getattr(args, "dev", False):
        settings.app_env = "development"
    return settings


def _existing_dev_secrets(args: argparse.Namespace) -> None:
    """Commands that sign or decrypt with the server's dev secrets (mint-token, keys rotate)
    use the ones `serve --dev` made; new ones would make tokens the server then refuses."""
    plain = _plain_settings(args)
    if not plain.is_dev:
        return
    refusal = dev_refusal(plain)  # production settings first: that is the mistake to fix
    if refusal is not None:
        _refuse(refusal)
    found = _var_dir(plain) / DEV_SECRETS_FILE
    if not found.is_file():
        _refuse(
            f"no development secrets at {found.absolute()}: run this where `monday-notify serve"
            f" --dev` runs, or set {VAR_DIR_ENV} to that server's var folder."
        )


def _require_database(url: str, *, need_head: str | None = None, create: bool = True) -> None:
    """Refuse to go on, in one line, when this command cannot work with the database
    (server/storage/preflight.py says what is checked)."""
    from server.storage.preflight import database_refusal

    problem = asyncio.run(database_refusal(url, need_head=need_head, create=create))
    if problem is not None:
        _refuse(problem)


def _require_readable_credentials(settings: Settings) -> None:
    """Refuse to serve, in one line, with keys that cannot open the stored credentials: every
    send would be a 500 on a server that says it is ready."""
    from server.storage.preflight import credential_refusal

    dev_secrets = (_var_dir(settings) / DEV_SECRETS_FILE).absolute() if settings.is_dev else None
    problem = asyncio.run(
        credential_refusal(settings.database_url, settings.fernet_keys, dev_secrets=dev_secrets)
    )
    if problem is not None:
        _refuse(problem)


def _require_free_port(host: str, port: int) -> None:
    problem = port_problem(host, port)
    if problem is not None:
        _refuse(problem)


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    plain = _plain_settings(args)
    if plain.is_dev:
        # Before the dev secrets are made: a server that cannot listen leaves no var/ behind.
        _require_free_port(args.host or plain.host, plain.port if args.port is None else args.port)
    settings = _settings(args, **overrides)
    fmt = (
        settings.log_format
        if settings.log_format != "auto"
        else ("text" if settings.is_dev else "json")
    )
    _require_free_port(settings.host, settings.port)
    # Without MIGRATE_ON_START an old schema would be served: listening, "ready", every request
    # a 500. With it, the migration on start brings the schema to the head.
    not_migrating = (
        None if settings.migrate_on_start else "with MIGRATE_ON_START=false serve does not"
    )
    _require_database(
        settings.database_url, need_head=not_migrating, create=settings.migrate_on_start
    )
    _require_readable_credentials(settings)
    configure_logging(fmt)
    from server.app import create_app
    from server.http import protocol

    app = create_app(settings)

    def listening() -> None:
        # Called once the socket is bound, so a busy port never says "listening".
        print(f"monday-notify listening on http://{settings.host}:{settings.port}", flush=True)
        if settings.is_dev:
            print(f"local monday: {settings.base_url}/dev", flush=True)
            state = _var_dir(settings).absolute()
            print(f"dev secrets in {state} (elsewhere: {VAR_DIR_ENV}={state})", flush=True)

    try:
        protocol.run(
            app,
            host=settings.host,
            port=settings.port,
            head_timeout=settings.request_head_timeout_seconds,
            body_timeout=settings.request_body_timeout_seconds,
            on_listening=listening,
            event_loop=settings.event_loop,
        )
    except protocol.CannotListen as error:
        _refuse(listen_problem(settings.host, settings.port, error))
    except OSError as error:
        # Start-up reached something after the checks above (the database went away, say).
        _refuse(f"could not start: {error.strerror or error} ({type(error).__name__}).")
    return 0


def _mint(args: argparse.Namespace) -> int:
    _existing_dev_secrets(args)
    settings = _settings(args)
    if args.kind == "session":
        token = mint_session(
            settings.client_secrets[0],
            account_id=args.account,
            user_id=args.user,
            client_id=settings.monday_client_id,
            app_id=settings.monday_app_id,
            is_admin=args.admin,
            is_view_only=args.view_only,
            is_guest=args.guest,
            lifetime=args.lifetime,
        )
    elif args.kind == "lifecycle":
        token = mint_lifecycle(
            settings.client_secrets[0],
            account_id=args.account,
            user_id=args.user,
            audience=settings.base_url + (args.route or LIFECYCLE_PATH),
            lifetime=args.lifetime,
        )
    else:
        if not settings.signing_secrets:
            print(
                "monday-notify: MONDAY_SIGNING_SECRET is required to mint integration tokens.",
                file=sys.stderr,
            )
            return 2
        token = mint_integration(
            settings.signing_secrets[0],
            account_id=args.account,
            user_id=args.user,
            audience=settings.base_url + (args.route or "/monday/actions/notify"),
            short_lived_token=_short_lived_token(args, settings),
            lifetime=args.lifetime,
        )
    print(token)
    return 0


def _short_lived_token(args: argparse.Namespace, settings: Settings) -> str | None:
    """`--short-lived-token`, else in development the one the fake monday knows for the dev
    user (so a locally run automation can send; server/dev/fake_monday_records.py)."""
    if args.short_lived_token is not None:
        return str(args.short_lived_token)
    if not settings.is_dev:
        return None
    from server.dev.fake_monday_records import dev_short_lived_token

    return dev_short_lived_token(args.user)


def _db_upgrade(args: argparse.Namespace) -> int:
    from server.storage.migrate import head_revision, upgrade_sync

    # Only DATABASE_URL matters here (contract §14): no OAuth secret, no generated dev secrets.
    settings = _plain_settings(args)
    url = settings.database_url
    if settings.is_dev and "database_url" not in settings.model_fields_set:
        _var_dir(settings).mkdir(mode=0o700, parents=True, exist_ok=True)  # see settings.py
        url = f"sqlite+aiosqlite:///{_var_dir(settings) / 'monday-notify.db'}"
    _require_database(url)
    applied = upgrade_sync(url)
    for migration in applied:
        print(f"applied {migration}")
    state = "is now" if applied else "was already"
    print(f"database {state} at the latest revision ({head_revision()})")
    return 0


def _keys(args: argparse.Namespace) -> int:
    if args.action == "generate":
        print(Fernet.generate_key().decode())
        return 0
    from server.storage.rotate import Undecryptable, rotate_keys

    # Rotation needs the keys and the database, not the OAuth client's id or secret.
    _existing_dev_secrets(args)
    if _plain_settings(args).is_dev:
        settings = _settings(args)
    else:
        settings = _plain_settings(args)
        _refuse_if(p for p in settings.problems() if p.startswith("ENCRYPTION_KEYS"))
    # Rotation reads this release's tables; a file that is not there is not made empty.
    _require_database(settings.database_url, need_head="keys rotate does not migrate", create=False)
    try:
        count = asyncio.run(rotate_keys(settings))
    except Undecryptable as error:
        _refuse(
            f"ENCRYPTION_KEYS cannot decrypt {error.failed} of the {error.total} stored "
            "secret(s), so nothing was re-encrypted: put the key they were written with back "
            "into ENCRYPTION_KEYS (after the new one) and run `monday-notify keys rotate` again."
        )
    print(f"re-encrypted {count} stored credential(s) with the first key")
    return 0


def _manifest(args: argparse.Namespace) -> int:
    import json

    from server.manifest import ManifestError, render

    # Only the public URL is needed: no secrets, so this works on a machine without them.
    base_url = args.base_url or Settings().base_url
    try:
        document = render(base_url)
    except ManifestError as error:
        print(f"monday-notify: {error}", file=sys.stderr)
        return 2
    print(json.dumps(document, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="monday-notify", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def dev_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--dev", action="store_true", help="development mode: no configuration needed"
        )

    serve = commands.add_parser("serve", help="start the server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    dev_flag(serve)
    serve.set_defaults(run=_serve)

    mint = commands.add_parser("mint-token", help="print a token signed with the configured secret")
    mint.add_argument("--kind", choices=["session", "lifecycle", "integration"], default="session")
    mint.add_argument("--account", default="1001", type=_monday_id)
    mint.add_argument("--user", default="1", type=_monday_id)
    role = mint.add_mutually_exclusive_group()  # monday gives a user one of these roles
    role.add_argument("--admin", action="store_true")
    role.add_argument("--view-only", action="store_true")
    role.add_argument("--guest", action="store_true")
    mint.add_argument("--lifetime", type=int, default=3600, help="seconds until exp")
    mint.add_argument(
        "--route",
        default=None,
        help="outbound tokens: the aud path (default /monday/lifecycle or /monday/actions/notify)",
    )
    mint.add_argument(
        "--short-lived-token",
        default=None,
        help="integration: shortLivedToken claim (--dev: the fake monday's for --user)",
    )
    dev_flag(mint)
    mint.set_defaults(run=_mint)

    db = commands.add_parser("db", help="database commands")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    up = db_commands.add_parser("upgrade", help="apply migrations")
    dev_flag(up)
    up.set_defaults(run=_db_upgrade)

    keys = commands.add_parser("keys", help="encryption keys")
    keys.add_argument("action", choices=["generate", "rotate"])
    dev_flag(keys)
    keys.set_defaults(run=_keys)

    manifest = commands.add_parser("manifest", help="the monday app manifest")
    manifest_commands = manifest.add_subparsers(dest="manifest_command", required=True)
    render = manifest_commands.add_parser(
        "render", help="print manifest/manifest.json with {{PUBLIC_BASE_URL}} filled"
    )
    render.add_argument("--base-url", help="default: PUBLIC_BASE_URL, else http://HOST:PORT")
    render.set_defaults(run=_manifest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`manifest render | head`): nothing more to tell it, and no
        # traceback either. stdout points at /dev/null so the interpreter's last flush is
        # quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return result


if __name__ == "__main__":
    raise SystemExit(main())
