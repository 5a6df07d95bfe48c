"""The `monday-notify` command: serve, mint-token, db upgrade, keys, manifest."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet

from server.logs import configure_logging
from server.settings import Settings, SettingsError, load_settings
from server.tokens import mint_integration, mint_lifecycle, mint_session


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    try:
        return load_settings(dev=getattr(args, "dev", False), **overrides)
    except SettingsError as error:
        for problem in error.problems:
            print(f"monday-notify: {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = _settings(args, **overrides)
    fmt = (
        settings.log_format
        if settings.log_format != "auto"
        else ("text" if settings.is_dev else "json")
    )
    configure_logging(fmt)
    from server.app import create_app
    from server.http import protocol

    app = create_app(settings)
    print(f"monday-notify listening on http://{settings.host}:{settings.port}", flush=True)
    if settings.is_dev:
        print(f"local monday: {settings.base_url}/dev", flush=True)
    protocol.run(
        app,
        host=settings.host,
        port=settings.port,
        head_timeout=settings.request_head_timeout_seconds,
        body_timeout=settings.request_body_timeout_seconds,
    )
    return 0


def _mint(args: argparse.Namespace) -> int:
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
            audience=settings.base_url + args.route,
            short_lived_token=args.short_lived_token,
            lifetime=args.lifetime,
        )
    print(token)
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from server.storage.migrate import upgrade_sync

    settings = _settings(args)
    upgrade_sync(settings.database_url)
    print("database is at the latest revision")
    return 0


def _keys(args: argparse.Namespace) -> int:
    if args.action == "generate":
        print(Fernet.generate_key().decode())
        return 0
    from server.installations.rotate import rotate_keys

    settings = _settings(args)
    count = asyncio.run(rotate_keys(settings))
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
    parser = argparse.ArgumentParser(prog="monday-notify", description=__doc__)
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
    mint.add_argument("--account", default="1001")
    mint.add_argument("--user", default="1")
    mint.add_argument("--admin", action="store_true")
    mint.add_argument("--view-only", action="store_true")
    mint.add_argument("--guest", action="store_true")
    mint.add_argument("--lifetime", type=int, default=3600, help="seconds until exp")
    mint.add_argument("--route", default="/monday/actions/notify", help="integration: the aud path")
    mint.add_argument(
        "--short-lived-token", default=None, help="integration: shortLivedToken claim"
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
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
