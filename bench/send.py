"""Issue 3's first benchmark: `POST /notifications` against the fake monday.

The whole server (verify the session token, decide the sender, write the ledger row, forward
`create_notification`, record the outcome, answer) against a bare aiohttp handler that only
verifies the token and forwards, on the same machine, same fake monday, same load, same run.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from bench import charts
from bench.common import (
    MEMBER,
    PG_SKIPPED,
    FakeServer,
    Load,
    Options,
    RequestSpec,
    app_settings,
    check_load,
    database,
    fake_monday,
    fmt_ms,
    install_account,
    loop_thread_cpu_seconds,
    pg_admin_url,
    process_cpu_seconds,
    ratio,
    run_load,
    run_paced,
    say,
    served,
    session_token,
    write_result,
)

NAME = "send"
CONCURRENCY = 16
# The fixed-rate comparison: a load both servers carry on the reference machine (the app's
# most is ~1,900 req/s there), so what is compared is latency, not the ceiling.
PACED_RATE = 1000.0
# Full runs measure in paired rounds (`--rounds`): a single run's p99 rests on its ~20 slowest
# requests, and on a shared 2-core machine one run in two lands either side of the target.
ROUNDS = 5
# Two in the smoke run of `make test`, so the rounds' own code (median, counts) runs in CI.
QUICK_ROUNDS = 2
# Issue 10's targets for SQLite: at least this share of the forwarder's throughput, and at
# most this multiple of its p99. Counted per round, never a pass/fail.
THROUGHPUT_TARGET = 0.5
P99_TARGET = 2.0
# The fake monday's calls a minute per account (its own default), raised with `--requests`.
MINUTE_BUDGET = 5000


def in_flight(opts: Options) -> int:
    """Requests in flight (`--in-flight`; 16 by default; issue 10's own measurement used 32)."""
    return opts.in_flight or CONCURRENCY


def rounds(opts: Options) -> int:
    """Paired rounds: `--rounds`, else ROUNDS in a full run and QUICK_ROUNDS with `--quick`."""
    if opts.rounds is not None:
        return opts.rounds
    return QUICK_ROUNDS if opts.quick else ROUNDS


def result_name(opts: Options) -> str:
    """`send`, or `send-inflight-N` (and `-requests-M`) off the defaults, so such a run never
    replaces the published figures."""
    n = in_flight(opts)
    if n == CONCURRENCY and opts.requests is None:
        return NAME
    name = f"{NAME}-inflight-{n}"
    return name if opts.requests is None else f"{name}-requests-{opts.requests}"


def sizes(opts: Options) -> tuple[int, float]:
    """(request count, time cap in seconds) per target: `--requests` (with a cap of at
    least 20 s, 2 ms a request), else 150 with `--quick` and 2,000 in a full run."""
    if opts.requests is not None:
        return opts.requests, max(20.0, opts.requests / 500)
    return (150, 4.0) if opts.quick else (2000, 20.0)


def warmups(opts: Options) -> int:
    """Untimed requests before the timed ones (single notifications)."""
    return 5 if opts.quick else 20


def notification(i: int) -> dict[str, Any]:
    return {
        "recipient": MEMBER,
        "message": f"Benchmark notification {i}",
        "collection": "Project",
        "item": "5550001",
    }


async def send_load(
    base_url: str, opts: Options, *, batch: int = 1, cap: float | None = None
) -> Load:
    """POST /notifications `count` times with `in_flight(opts)` in flight; `batch` > 1 sends
    arrays of that many notifications per request."""
    count, default_cap = sizes(opts)
    cap = default_cap if cap is None else min(cap, default_cap)
    warmup = warmups(opts)
    if batch > 1:
        count, warmup = (4, 0) if opts.quick else (max(count // batch * 2, 20), 2)
    headers = {"Authorization": session_token()}

    def make(i: int) -> RequestSpec:
        body: Any = notification(i) if batch == 1 else [notification(i) for _ in range(batch)]
        return ("POST", "/notifications", headers, body)

    return await run_load(
        base_url, make, count=count, concurrency=in_flight(opts), max_seconds=cap, warmup=warmup
    )


async def measure_bare(
    fake: FakeServer, opts: Options, label: str, *, cap: float | None = None
) -> Load:
    settings = app_settings("sqlite+aiosqlite:///:memory:", fake.api_url)
    async with served("bare", settings, label) as base:
        return await with_server_cpu(label, send_load(base, opts, cap=cap), opts)


async def measure_app(
    fake: FakeServer,
    opts: Options,
    engine: str,
    label: str,
    *,
    batch: int = 1,
    cap: float | None = None,
) -> Load:
    async with database(engine, opts, label) as url:
        await install_account(url)
        async with served("app", app_settings(url, fake.api_url), label) as base:
            return await with_server_cpu(
                label, send_load(base, opts, batch=batch, cap=cap), opts, batch=batch
            )


def paced_sizes(opts: Options) -> tuple[float, int]:
    """(requests a second, request count) of the fixed-rate comparison."""
    return (300.0, 150) if opts.quick else (PACED_RATE, 4000)


async def measure_paced(fake: FakeServer, opts: Options, kind: str, label: str) -> Load:
    """Single-notification sends at a fixed rate (`run_paced`) to the bare forwarder
    (`kind` "bare") or the app on SQLite ("app"), in a server of its own."""
    rate, count = paced_sizes(opts)
    headers = {"Authorization": session_token()}

    def make(i: int) -> RequestSpec:
        return ("POST", "/notifications", headers, notification(i))

    async def paced(base: str) -> Load:
        return await run_paced(base, make, rate=rate, count=count, warmup=warmups(opts))

    if kind == "bare":
        settings = app_settings("sqlite+aiosqlite:///:memory:", fake.api_url)
        async with served("bare", settings, label) as base:
            return await paced(base)
    async with database("sqlite", opts, label) as url:
        await install_account(url)
        async with served("app", app_settings(url, fake.api_url), label) as base:
            return await paced(base)


async def with_server_cpu(
    label: str, load: Awaitable[Load], opts: Options, *, batch: int = 1
) -> Load:
    """`load`, with the server's CPU time per request and its event loop thread's
    (warm-ups included in the count)."""
    before = process_cpu_seconds(label), loop_thread_cpu_seconds(label)
    done = await load
    after = process_cpu_seconds(label), loop_thread_cpu_seconds(label)
    answered = sum(done.statuses.values()) + (warmups(opts) if batch == 1 else 0)
    if not answered:
        return done
    done.server_cpu_ms, done.loop_cpu_ms = (
        None if b is None or a is None else round((a - b) / answered * 1000, 3)
        for b, a in zip(before, after, strict=True)
    )
    return done


def describe(name: str, load: Load) -> None:
    s = load.summary()
    cpu = "" if load.server_cpu_ms is None else f", server CPU {load.server_cpu_ms:.3f} ms/req"
    say(
        f"  {name:<28} {s['requests_per_s']:>8.1f} req/s   p50 {fmt_ms(s['p50_ms']):>9}   "
        f"p99 {fmt_ms(s['p99_ms']):>9}   ({load.ok} ok in {load.elapsed:.1f} s{cpu})"
    )
    busy = cores_busy(load)
    if busy:
        say("      cores busy: " + ", ".join(f"{part} {cores:.2f}" for part, cores in busy.items()))
    check_load(load, name)


def cores_busy(load: Load) -> dict[str, float]:
    """How many cores' worth of CPU each part used while the load ran (CPU per request times
    requests a second): the server, its event loop thread, and this process (the load
    generator and the fake monday). One part near 1.0 is what held the rate: one
    interpreter, whose lock all of a process' threads share, runs Python on one core."""
    parts = {
        "server": load.server_cpu_ms,
        "its event loop thread": load.loop_cpu_ms,
        "benchmark process": load.bench_cpu_ms,
    }
    return {part: ms * load.rate / 1000 for part, ms in parts.items() if ms is not None}


@dataclass
class Round:
    """One paired round: the forwarder, then the app on one engine, each in a fresh server
    (the app with a fresh database), against the same fake monday."""

    bare: Load
    app: Load
    upstream: int  # monday requests the app's sends took
    engine: str = "sqlite"

    @property
    def tag(self) -> str:
        return "app" if self.engine == "sqlite" else "pg"

    def ratios(self) -> dict[str, float | None]:
        bare_s, app_s, tag = self.bare.summary(), self.app.summary(), self.tag
        out = {
            f"throughput_{tag}_over_bare": ratio(self.app.rate, self.bare.rate),
            f"p50_{tag}_over_bare": ratio(app_s["p50_ms"], bare_s["p50_ms"]),
            f"p99_{tag}_over_bare": ratio(app_s["p99_ms"], bare_s["p99_ms"]),
        }
        if self.engine == "sqlite":
            out["server_cpu_app_over_bare"] = ratio(self.app.server_cpu_ms, self.bare.server_cpu_ms)
        return out

    def results(self) -> dict[str, Any]:
        key = "app_sqlite" if self.engine == "sqlite" else "app_postgres"
        return {
            "bare": self.bare.summary(),
            key: {**self.app.summary(), "upstream_requests": self.upstream},
            "ratios": self.ratios(),
        }

    def meets(self) -> tuple[bool, bool]:
        """(throughput target met, p99 target met): issue 10's "Done when", on SQLite."""
        assert self.engine == "sqlite", "issue 10's targets are SQLite's"
        r = self.ratios()
        throughput, p99 = r["throughput_app_over_bare"], r["p99_app_over_bare"]
        return (
            throughput is not None and throughput >= THROUGHPUT_TARGET,
            p99 is not None and p99 <= P99_TARGET,
        )


ENGINE_NAMES = {"sqlite": "monday-notify (SQLite)", "postgres": "monday-notify (PostgreSQL)"}


async def measure_round(fake: FakeServer, opts: Options, engine: str, heading: str) -> Round:
    if heading:
        say(f"  {heading}")
    bare = await measure_bare(fake, opts, "send-bare")
    describe("bare (token + forward)", bare)
    # Each target gets monday's minute budget afresh: the fake advertises 5,000 calls a
    # minute per account (`RateLimit` headers), and the governor keeps to what it is told.
    # Shared, the third target met a spent budget and had half its rows deferred to the
    # worker (docs/architecture.md, "The hot path").
    fake.fake.new_windows()
    before = fake.v2_requests()
    label = "send-app" if engine == "sqlite" else "send-app-pg"
    app = await measure_app(fake, opts, engine, label)
    done = Round(bare, app, fake.v2_requests() - before, engine)
    describe(ENGINE_NAMES[engine], app)
    fake.fake.new_windows()
    return done


def say_ratios(r: dict[str, float | None], indent: str = "  ") -> None:
    if "throughput_app_over_bare" in r:
        say(
            f"{indent}ratio app/bare: throughput x{r['throughput_app_over_bare']}, "
            f"p50 x{r['p50_app_over_bare']}, p99 x{r['p99_app_over_bare']}, "
            f"server CPU per request x{r['server_cpu_app_over_bare']}"
        )
    if "throughput_pg_over_bare" in r:
        say(
            f"{indent}ratio PostgreSQL/bare: throughput x{r['throughput_pg_over_bare']}, "
            f"p50 x{r['p50_pg_over_bare']}, p99 x{r['p99_pg_over_bare']}"
        )


def median_round(done: list[Round]) -> int:
    """The index of the round whose p99 ratio is the median (the lower middle one of an even
    count): a real round, all of whose figures were measured together."""
    order = sorted(
        range(len(done)),
        key=lambda i: done[i].ratios()["p99_app_over_bare"] or float("inf"),
    )
    return order[(len(order) - 1) // 2]


def targets(done: list[Round]) -> dict[str, Any]:
    met = [r.meets() for r in done]
    return {
        "throughput_app_over_bare_at_least": THROUGHPUT_TARGET,
        "p99_app_over_bare_at_most": P99_TARGET,
        "rounds": len(done),
        "throughput_met": sum(t for t, _ in met),
        "p99_met": sum(p for _, p in met),
        "both_met": sum(t and p for t, p in met),
    }


async def run(opts: Options) -> dict[str, Any]:
    count, cap = sizes(opts)
    total = rounds(opts)
    say(
        f"send: POST /notifications, {count} requests (cap {cap:g} s), "
        f"concurrency {in_flight(opts)}, {total} SQLite round(s)"
    )
    done: list[Round] = []
    pg: Round | None = None
    async with fake_monday() as fake:
        # monday's own per-account budget must not bind either (what is measured is the send
        # path): the fake advertises 5,000 calls a minute by default, and a 40,000-request
        # PostgreSQL target reached it and had the rest of its rows deferred to the worker.
        fake.fake.minute_budget = max(MINUTE_BUDGET, 10 * count)
        for n in range(1, total + 1):
            heading = f"round {n} of {total}:" if total > 1 else ""
            done.append(await measure_round(fake, opts, "sqlite", heading))
            if total > 1:
                say_ratios(done[-1].ratios(), indent="    ")
        # PostgreSQL last, in a round of its own: its server's background work after a run
        # (writing out, dropping the run's database) took CPU from the rounds after it.
        if pg_admin_url(opts) is not None:
            pg = await measure_round(fake, opts, "postgres", "PostgreSQL, with its own forwarder:")
        else:
            say(PG_SKIPPED)
        paced_bare = await measure_paced(fake, opts, "bare", "send-paced-bare")
        fake.fake.new_windows()
        paced_app = await measure_paced(fake, opts, "app", "send-paced-app")
    middle = median_round(done)
    results = done[middle].results()
    if total > 1:
        met = targets(done)
        say(
            f"  of {total} rounds, SQLite met throughput >= {THROUGHPUT_TARGET}x the forwarder's "
            f"in {met['throughput_met']}, p99 <= {P99_TARGET}x in {met['p99_met']}, "
            f"both in {met['both_met']}; the median round (by p99 ratio) is round {middle + 1}:"
        )
        results.update(median_round=middle + 1, targets=met)
        results["rounds"] = [r.results() for r in done]
    if pg is not None:
        results["app_postgres"] = pg.results()["app_postgres"]
        results["bare_beside_postgres"] = pg.bare.summary()
        results["ratios"].update(pg.ratios())
    say_ratios(results["ratios"])
    results["paced"] = paced_results(paced_bare, paced_app, opts)
    params = {
        "requests": count,
        "time_cap_s": cap,
        "concurrency": in_flight(opts),
        "warmup": warmups(opts),
        "rounds": total,
    }
    write_result(result_name(opts), opts, params, results)
    if opts.charts and result_name(opts) == NAME:
        charts.send_chart(opts, results)
    return results


def paced_results(bare: Load, app: Load, opts: Options) -> dict[str, Any]:
    """Both fixed-rate loads, printed, and their latency ratios."""
    rate, count = paced_sizes(opts)
    say(f"  at a fixed {rate:g} requests a second ({count} requests each):")
    describe("bare (fixed rate)", bare)
    describe("SQLite (fixed rate)", app)
    bare_s, app_s = bare.summary(), app.summary()
    out = {
        "rate_per_s": rate,
        "requests": count,
        "bare": bare_s,
        "app_sqlite": app_s,
        "p50_app_over_bare": ratio(app_s["p50_ms"], bare_s["p50_ms"]),
        "p99_app_over_bare": ratio(app_s["p99_ms"], bare_s["p99_ms"]),
    }
    say(
        f"  ratio app/bare at {rate:g}/s: p50 x{out['p50_app_over_bare']}, "
        f"p99 x{out['p99_app_over_bare']}"
    )
    return out
