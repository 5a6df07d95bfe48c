"""What every benchmark shares: the fake monday, the server under test in its own process,
a bounded load generator, statistics, PostgreSQL on loopback, and result files.

Layout of a run (the machine has few cores, so the roles are split over two processes):

- this process: the load generator (aiohttp client) and the fake monday (an aiohttp
  `AppRunner` on 127.0.0.1), so the benchmark can read what monday received;
- a child process (`python -m bench.serve`): the server under test, either the whole
  monday-notify app (`create_app`) or the bare baseline handler, on 127.0.0.1.

Nothing leaves 127.0.0.1; every loop is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from server.clock import utcnow
from server.dev.fake_monday import FakeMonday, create_fake_monday_app, seed_dev_users
from server.installations.crypto import CredentialCipher
from server.monday.client import CREATE_NOTIFICATION, notification_document
from server.settings import Settings
from server.storage.db import create_engine
from server.storage.installations import SqlCredentials, upsert_installation
from server.storage.migrate import upgrade
from server.token_mint import mint_session

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
CHARTS_DIR = REPO / "docs" / "bench"
QUICK_DIR = REPO / "var" / "bench"  # --quick writes here (gitignored), never over the figures
WORK_DIR = REPO / "var" / "bench" / "work"  # databases and server logs of a run

# Bench-only constants (the same shape as the tests'); nothing here is a real secret.
CLIENT_ID = "bench-client-id"
CLIENT_SECRET = "bench-client-secret-0123456789abcdef0123456789"
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef012345"
ENCRYPTION_KEY = "5Vb2n3xG3X2kq1ZKq7c2n8Yb0mQ4wD6rT9uH1jL3pS0="
ACCOUNT = "1001"
INSTALLER = "11"
MEMBER = "12"
APP_TOKEN = "bench-oauth-token-of-11"  # the app's OAuth token for the installer (fake monday)

SERVER_START_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class Options:
    quick: bool = False
    charts: bool = True
    pg: bool = True
    # Requests in flight for `send` (`--in-flight`; None: 16). `accept` keeps its 16.
    in_flight: int | None = None
    # Paired rounds of `send` (`--rounds`; None: 5, or 2 with `--quick`).
    rounds: int | None = None
    # Requests per target of `send` (`--requests`; None: 2,000, or 150 with `--quick`).
    requests: int | None = None

    @property
    def results_dir(self) -> Path:
        return QUICK_DIR if self.quick else RESULTS_DIR

    @property
    def charts_dir(self) -> Path:
        return QUICK_DIR if self.quick else CHARTS_DIR


PG_SKIPPED = (
    "  PostgreSQL part skipped: no DATABASE_URL_PG, and scripts/pg-local.sh could not start one"
)


def say(message: str = "") -> None:
    print(message, flush=True)


# -- tokens and settings -------------------------------------------------------------------
def session_token(user: str = INSTALLER, *, admin: bool = True) -> str:
    return mint_session(
        CLIENT_SECRET,
        account_id=ACCOUNT,
        user_id=user,
        client_id=CLIENT_ID,
        is_admin=admin,
        lifetime=3600,
    )


def app_settings(database_url: str, monday_api_url: str, **overrides: Any) -> dict[str, Any]:
    """Settings for the server under test: production mode, JSON logs, the fake monday."""
    values: dict[str, Any] = {
        "app_env": "production",
        "database_url": database_url,
        "monday_client_id": CLIENT_ID,
        "monday_client_secret": CLIENT_SECRET,
        "monday_signing_secret": SIGNING_SECRET,
        "encryption_keys": ENCRYPTION_KEY,
        "public_base_url": "http://127.0.0.1:8080",
        "monday_api_url": monday_api_url,
        "log_format": "json",
        # The per-user abuse limit would cap a load test from one user; it is not measured here.
        "send_rate_per_minute": 1_000_000,
        "migrate_on_start": False,  # bench.common.database() has applied the migrations
    }
    values.update(overrides)
    return values


# -- the fake monday -----------------------------------------------------------------------
@dataclass
class FakeServer:
    fake: FakeMonday
    url: str
    # (monotonic time, HTTP status) of every answer of POST /v2.
    answers: list[tuple[float, int]] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return self.url + "/v2"

    def v2_requests(self) -> int:
        return len(self.answers)

    def statuses(self) -> Counter[int]:
        return Counter(status for _, status in self.answers)


def _memoize_fake_graphql() -> None:
    """Parse and validate each distinct GraphQL document once in the fake monday.

    The fake runs graphql-core's parse + validate on every request (about 5-10 ms of CPU per
    request on this kind of machine), which made the *fake* the bottleneck of every
    benchmark. Both are pure functions of the query text, and every request of a run repeats
    the same few documents (only the variables change), so caching them changes no answer:
    execution, budgets, errors and recording still happen per request.
    """
    from server.dev import fake_monday_graphql as fg

    if getattr(fg, "_bench_memoized", False):
        return
    real_parse, real_validate = fg.parse, fg.validate
    parsed: dict[str, Any] = {}
    validated: dict[int, tuple[Any, Any]] = {}

    def parse(source: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(source, str) or args or kwargs:
            return real_parse(source, *args, **kwargs)
        if source not in parsed:
            if len(parsed) > 1000:
                parsed.clear()
            parsed[source] = real_parse(source)  # raises GraphQLError as before (not cached)
        return parsed[source]

    def validate(schema: Any, document: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or schema is not fg.SCHEMA:
            return real_validate(schema, document, *args, **kwargs)
        hit = validated.get(id(document))
        if hit is None or hit[0] is not document:
            if len(validated) > 1000:
                validated.clear()
            hit = (document, real_validate(schema, document))
            validated[id(document)] = hit
        return list(hit[1])

    fg.parse, fg.validate = parse, validate  # type: ignore[assignment]
    fg._bench_memoized = True  # type: ignore[attr-defined]
    # The documents the server sends, parsed and validated before any run: the first request
    # of each size (up to 12 ms for 16 aliases) would otherwise be timed as the server's
    # latency, once per size, at whatever point of a run that size first appears.
    for count in range(1, Settings.model_fields["delivery_batch_size"].default + 1):
        query = CREATE_NOTIFICATION if count == 1 else notification_document(count)
        validate(fg.SCHEMA, parse(query))


@contextlib.asynccontextmanager
async def fake_monday(extra_users: int = 0) -> AsyncIterator[FakeServer]:
    """The fake monday over real HTTP on 127.0.0.1, with the dev users of account 1001,
    `extra_users` more recipients (ids 100000...), and the app's OAuth token for user 11."""
    _memoize_fake_graphql()
    fake = FakeMonday()
    seed_dev_users(fake, ACCOUNT)
    for i in range(extra_users):
        user_id = str(100_000 + i)
        fake.add_user(user_id, ACCOUNT, f"Recipient {user_id}", f"r{user_id}@example.com")
    fake.add_token(APP_TOKEN, INSTALLER, ACCOUNT, "oauth")
    app = create_fake_monday_app(fake)
    server = FakeServer(fake, "")

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        if request.path.endswith("/v2"):
            server.answers.append((time.monotonic(), response.status))

    app.on_response_prepare.append(record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.url = f"http://{host}:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


def recipient_ids(count: int) -> list[str]:
    return [str(100_000 + i) for i in range(count)]


# -- databases -----------------------------------------------------------------------------
_pg_admin: str | bool | None = False  # False: not looked up yet


def pg_admin_url(opts: Options) -> str | None:
    """DATABASE_URL_PG, else a local server from scripts/pg-local.sh; None when unavailable."""
    global _pg_admin
    if not opts.pg:
        return None
    if _pg_admin is not False:
        return _pg_admin  # type: ignore[return-value]
    url = os.environ.get("DATABASE_URL_PG", "").strip() or None
    if url is None:
        try:
            done = subprocess.run(
                ["bash", str(REPO / "scripts" / "pg-local.sh"), "start"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode == 0 and done.stdout.strip():
                url = done.stdout.strip().splitlines()[-1]
            else:
                say(f"  (PostgreSQL could not start: {done.stderr.strip().splitlines()[-1:]})")
        except (OSError, subprocess.TimeoutExpired) as exc:
            say(f"  (PostgreSQL could not start: {exc})")
    if url is not None:
        url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    _pg_admin = url
    return url


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def database(kind: str, opts: Options, name: str) -> AsyncIterator[str]:
    """A fresh, migrated database: a SQLite file under var/bench/work, or a throw-away
    PostgreSQL database (dropped afterwards). Raises LookupError if PostgreSQL is unavailable."""
    if kind == "sqlite":
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        path = WORK_DIR / f"{name}.db"
        _remove_sqlite(path)
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade(url)
        try:
            yield url
        finally:
            _remove_sqlite(path)
        return
    admin = pg_admin_url(opts)
    if admin is None:
        raise LookupError("PostgreSQL is not available")
    import asyncpg
    from sqlalchemy.engine import make_url

    admin_url = make_url(admin)
    dsn = admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    db_name = f"bench_{name}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{db_name}"')
        url = admin_url.set(database=db_name).render_as_string(hide_password=False)
        try:
            await upgrade(url)
            yield url
        finally:
            await _drop_pg_database(conn, db_name)
    finally:
        await conn.close()


async def _drop_pg_database(conn: Any, db_name: str) -> None:
    """Drop a bench database. FORCE ends our own leftover sessions, but not an autovacuum
    worker (a superuser process) busy with the freshly seeded table: wait for it instead."""
    import asyncpg

    for attempt in range(20):
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            return
        except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
            await asyncio.sleep(0.5 + attempt * 0.25)
    say(f"  (could not drop the PostgreSQL database {db_name}; drop it by hand)")


async def install_account(database_url: str) -> None:
    """What an installed account with the app's OAuth token for its installer looks like."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await upsert_installation(
                conn,
                ACCOUNT,
                {
                    "installer_user_id": INSTALLER,
                    "sender_policy": "app_then_installer",
                    "installed": True,
                    "last_event_type": "install",
                },
                now=utcnow(),
            )
        await SqlCredentials(engine, CredentialCipher([ENCRYPTION_KEY])).put(
            account_id=ACCOUNT,
            user_id=INSTALLER,
            kind="oauth",
            secret=APP_TOKEN,
        )
    finally:
        await engine.dispose()


# -- the server under test, in its own process -----------------------------------------------
# The process id of each server `served` runs, by label (for `process_cpu_seconds`).
SERVED_PIDS: dict[str, int] = {}


def process_cpu_seconds(label: str) -> float | None:
    """CPU time (user + system, all threads) the server `served(..., label)` has used so far;
    None where /proc cannot tell (not Linux, or the server is gone). CPU per request is the
    figure a busy shared machine disturbs least (wall-clock rates move with the neighbours)."""
    pid = SERVED_PIDS.get(label)
    return None if pid is None else _proc_cpu_seconds(f"/proc/{pid}/stat")


def loop_thread_cpu_seconds(label: str) -> float | None:
    """The same for the server's main thread alone: the thread its event loop runs on (the
    rest is the SQLite writer's and the other helper threads'). All of the server's threads
    share one interpreter lock, so the two together show how close the process is to what
    one interpreter can do, whatever the machine's cores."""
    pid = SERVED_PIDS.get(label)
    return None if pid is None else _proc_cpu_seconds(f"/proc/{pid}/task/{pid}/stat")


def _proc_cpu_seconds(stat_path: str) -> float | None:
    try:
        fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process' CPU time (all its threads): the load generator and the fake monday both
    run here. `process_time` reads it to the nanosecond; /proc's figures for the server are
    in clock ticks (10 ms), which is coarse for a `--quick` run's few tens of ms a target."""
    return time.process_time()


@contextlib.asynccontextmanager
async def served(mode: str, settings: dict[str, Any], label: str) -> AsyncIterator[str]:
    """Start `python -m bench.serve` (`mode` "app" or "bare"); yield its base URL.

    The child prints `READY <port>` when listening and stops when its stdin closes."""
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    log_path = WORK_DIR / f"{label}.server.log"
    config = json.dumps({"mode": mode, "settings": settings, "monday_token": APP_TOKEN})
    env = {**os.environ, "BENCH_SERVE_CONFIG": config, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.serve",
            cwd=str(REPO),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        SERVED_PIDS[label] = proc.pid
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), SERVER_START_TIMEOUT)
            text = line.decode().strip()
            if not text.startswith("READY "):
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the {mode} server did not start: {text!r}\n{tail}")
            yield f"http://127.0.0.1:{int(text.split()[1])}"
        finally:
            if proc.returncode is None:
                assert proc.stdin is not None
                proc.stdin.close()
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            SERVED_PIDS.pop(label, None)


# -- load ----------------------------------------------------------------------------------
@dataclass
class Load:
    latencies: list[float]  # seconds, of the successful requests
    statuses: Counter[int]
    elapsed: float
    errors: list[str] = field(default_factory=list)
    # The server's CPU time per request answered (all its threads), when measured, and of
    # it its event loop's thread (warm-ups included); this process' (the load generator and
    # the fake monday) while the timed requests ran.
    server_cpu_ms: float | None = None
    loop_cpu_ms: float | None = None
    bench_cpu_ms: float | None = None

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "requests_ok": self.ok,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "elapsed_s": round(self.elapsed, 3),
            "requests_per_s": round(self.rate, 1),
            **latency_summary(self.latencies),
            **{
                key: value
                for key, value in (
                    ("server_cpu_ms", self.server_cpu_ms),
                    ("server_loop_thread_cpu_ms", self.loop_cpu_ms),
                    ("bench_process_cpu_ms", self.bench_cpu_ms),
                )
                if value is not None
            },
        }


def latency_summary(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "mean_ms": None}
    if len(latencies) == 1:
        only = round(latencies[0] * 1000, 2)
        return {"p50_ms": only, "p90_ms": only, "p99_ms": only, "mean_ms": only}
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "p50_ms": round(q[49] * 1000, 2),
        "p90_ms": round(q[89] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
    }


RequestSpec = tuple[str, str, dict[str, str], Any]  # method, path, headers, JSON body or None


async def run_load(
    base_url: str,
    make: Callable[[int], RequestSpec],
    *,
    count: int,
    concurrency: int,
    max_seconds: float,
    warmup: int = 0,
) -> Load:
    """`count` requests (`make(i)` builds request i), at most `concurrency` in flight, stopped
    early after `max_seconds`. Non-2xx answers are counted, not timed. The `warmup` requests
    before them run at the same concurrency (what only concurrent requests do for the first
    time, such as a server's first coalesced monday request, is then not timed)."""
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as http:

        async def run(indices: range, sink: Load | None) -> None:
            todo = iter(indices)
            deadline = time.perf_counter() + max_seconds

            async def worker() -> None:
                for i in todo:
                    await _timed(http, make(i), time.perf_counter(), sink)
                    if time.perf_counter() >= deadline:
                        return

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await run(range(-1, -1 - warmup, -1), None)
        load = Load([], Counter(), 0.0)
        with collector_paused():
            started, cpu_before = time.perf_counter(), own_cpu_seconds()
            await run(range(count), load)
            load.elapsed = time.perf_counter() - started
            answered = sum(load.statuses.values())
            if answered:
                load.bench_cpu_ms = round((own_cpu_seconds() - cpu_before) / answered * 1000, 3)
    return load


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """This process' own collector pauses (tens of ms: the fake monday keeps every request)
    would be timed as the server's latency, of whichever server they hit: none while timing."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _timed(
    http: aiohttp.ClientSession, spec: RequestSpec, started: float, sink: Load | None
) -> None:
    """Send `spec`; into `sink` (unless None) its status and, if 2xx, the time since
    `started`. Non-2xx answers are counted, not timed."""
    method, path, headers, body = spec
    try:
        async with http.request(method, path, headers=headers, json=body) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        if sink is not None:
            sink.statuses[0] += 1
            if len(sink.errors) < 5:
                sink.errors.append(f"{type(exc).__name__}: {exc}")
        return
    if sink is not None:
        sink.statuses[status] += 1
        if 200 <= status < 300:
            sink.latencies.append(time.perf_counter() - started)


async def run_paced(
    base_url: str,
    make: Callable[[int], RequestSpec],
    *,
    rate: float,
    count: int,
    warmup: int = 0,
    max_in_flight: int = 256,
) -> Load:
    """`count` requests started at a fixed `rate` a second, whatever the answers do (an open
    loop: a slow server meets the same arrivals, and queues them). Each latency is taken from
    the request's scheduled start, so time spent waiting for a free connection counts too
    (no "coordinated omission"). At most `max_in_flight` requests are open at once."""
    connector = aiohttp.TCPConnector(limit=max_in_flight, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as http:
        for i in range(warmup):
            await _timed(http, make(-1 - i), time.perf_counter(), None)
        load = Load([], Counter(), 0.0)
        tasks: list[asyncio.Task[None]] = []
        with collector_paused():
            started = time.perf_counter()
            for i in range(count):
                due = started + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(_timed(http, make(i), due, load)))
            await asyncio.gather(*tasks)
            load.elapsed = time.perf_counter() - started
    return load


def check_load(load: Load, what: str) -> None:
    bad = {k: v for k, v in load.statuses.items() if not 200 <= k < 300}
    if bad:
        say(f"  ! {what}: non-2xx answers {bad} {load.errors[:2]}")


# -- results -------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }


def write_result(name: str, opts: Options, params: dict[str, Any], results: Any) -> Path:
    out = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": opts.quick,
        "machine": machine(),
        "params": params,
        "results": results,
    }
    opts.results_dir.mkdir(parents=True, exist_ok=True)
    path = opts.results_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(path)
    say(f"  wrote {path.relative_to(REPO)}")
    return path


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 2)


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"
