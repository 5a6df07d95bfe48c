"""PNG charts of the benchmark results (matplotlib, headless), one per benchmark.

Full runs write docs/bench/<name>.png (shown by the README); --quick runs write var/bench/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import REPO, Options, say

BARE_COLOR = "#9aa5b1"
APP_COLOR = "#6161ff"  # monday's primary purple
PG_COLOR = "#00a0b0"
BAD_COLOR = "#e2445c"
OK_COLOR = "#00c875"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, opts: Options, name: str) -> Path:
    opts.charts_dir.mkdir(parents=True, exist_ok=True)
    path = opts.charts_dir / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    say(f"  wrote {path.relative_to(REPO)}")
    return path


def _bars(
    ax: Any, labels: list[str], values: list[float | None], colors: list[str], unit: str
) -> None:
    heights = [v or 0.0 for v in values]
    bars = ax.bar(labels, heights, color=colors)
    for bar, value in zip(bars, values, strict=True):
        text = "n/a" if value is None else f"{value:,.1f}{unit}"
        ax.annotate(
            text,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.margins(y=0.15)


def send_chart(opts: Options, results: dict[str, Any]) -> None:
    plt = _plt()
    runs = [("bare\n(token + forward)", results["bare"], BARE_COLOR)]
    runs.append(("monday-notify\n(SQLite ledger)", results["app_sqlite"], APP_COLOR))
    if isinstance(results.get("app_postgres"), dict):
        runs.append(("monday-notify\n(PostgreSQL ledger)", results["app_postgres"], PG_COLOR))
    labels = [label for label, _, _ in runs]
    colors = [color for _, _, color in runs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    _bars(left, labels, [run["requests_per_s"] for _, run, _ in runs], colors, "")
    left.set_title("POST /notifications: requests/s (higher is better)", fontsize=9)
    left.tick_params(axis="x", labelsize=7)
    x = range(len(runs))
    width = 0.38
    p50s = [run["p50_ms"] or 0 for _, run, _ in runs]
    p99s = [run["p99_ms"] or 0 for _, run, _ in runs]
    right.bar([i - width / 2 for i in x], p50s, width, label="p50", color=colors)
    right.bar([i + width / 2 for i in x], p99s, width, label="p99", color=colors, alpha=0.55)
    for i, (p50, p99) in enumerate(zip(p50s, p99s, strict=True)):
        right.annotate(f"p50 {p50:.1f}", (i - width / 2, p50), ha="center", va="bottom", fontsize=7)
        right.annotate(f"p99 {p99:.1f}", (i + width / 2, p99), ha="center", va="bottom", fontsize=7)
    right.set_xticks(list(x), labels)
    right.tick_params(axis="x", labelsize=7)
    right.set_ylabel("ms")
    right.set_title("latency (lower is better)", fontsize=9)
    right.margins(y=0.15)
    _save(fig, opts, "send")


def ledger_chart(opts: Options, results: dict[str, Any]) -> None:
    plt = _plt()
    engines = [e for e in ("sqlite", "postgres") if isinstance(results.get(e), dict)]
    fig, axes = plt.subplots(1, len(engines), figsize=(4.8 * len(engines), 3.6), squeeze=False)
    for ax, engine in zip(axes[0], engines, strict=True):
        data = results[engine]
        groups = [("list page\n+filter_count", "list"), ("unread\ncount", "aggregate")]
        width = 0.2
        for gi, (_, key) in enumerate(groups):
            api, sql = data[key]["api"], data[key]["sql"]
            vals = [sql["p50_ms"], sql["p99_ms"], api["p50_ms"], api["p99_ms"]]
            colors = [BARE_COLOR, BARE_COLOR, APP_COLOR, APP_COLOR]
            alphas = [1, 0.55, 1, 0.55]
            for j, (v, c, a) in enumerate(zip(vals, colors, alphas, strict=True)):
                xpos = gi + (j - 1.5) * width
                ax.bar(xpos, v or 0, width, color=c, alpha=a)
                ax.annotate(f"{v:.1f}", (xpos, v or 0), ha="center", va="bottom", fontsize=7)
        ax.set_xticks([0, 1], [g[0] for g in groups])
        from matplotlib.patches import Patch

        ax.legend(
            handles=[
                Patch(color=BARE_COLOR, label="SQL p50"),
                Patch(color=BARE_COLOR, alpha=0.55, label="SQL p99"),
                Patch(color=APP_COLOR, label="API p50"),
                Patch(color=APP_COLOR, alpha=0.55, label="API p99"),
            ],
            fontsize=7,
            loc="upper right",
        )
        ax.set_ylabel("ms")
        ax.set_title(
            f"{engine}: {data['rows']:,} rows: GET /notifications vs the same SQL", fontsize=8
        )
        ax.margins(y=0.15)
    _save(fig, opts, "ledger")


def fanout_chart(opts: Options, results: dict[str, Any]) -> None:
    plt = _plt()
    runs = results["runs"]
    labels = [f"batch {r['batch_size']}" for r in runs]
    colors = [APP_COLOR if r["batch_size"] > 1 else BARE_COLOR for r in runs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.4))
    _bars(left, labels, [r["upstream_requests"] for r in runs], colors, "")
    left.set_title(f"{results['recipients']:,} recipients: requests to monday", fontsize=9)
    _bars(right, labels, [r["wall_s"] for r in runs], colors, " s")
    right.set_title("wall time until all sent (lower is better)", fontsize=9)
    _save(fig, opts, "fanout")


def ratelimited_chart(opts: Options, results: dict[str, Any]) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ok = results["timeline"]["ok_s"]
    limited = results["timeline"]["rate_limited_s"]
    budget, window = results["budget"], results["window_s"]
    ax.step(
        ok, list(range(1, len(ok) + 1)), where="post", color=APP_COLOR, label="sent (cumulative)"
    )
    horizon = max(ok + limited + [window])
    steps = int(horizon // window) + 1
    xs = [k * window for k in range(steps + 1)]
    ax.step(
        xs,
        [budget * (k + 1) for k in range(steps + 1)],
        where="post",
        color=OK_COLOR,
        linestyle="--",
        label=f"allowed ({budget} per {window:g} s)",
    )
    if limited:
        ax.scatter(
            limited,
            [0.5] * len(limited),
            marker="x",
            color=BAD_COLOR,
            label=f"429 received ({len(limited)})",
        )
    ax.set_xlabel("seconds since the first request to monday")
    ax.set_ylabel("notifications")
    ax.set_ylim(bottom=0, top=results["notifications"] * 1.1)
    ax.set_title(
        f"rate-limited monday: {results['share_of_allowed_rate'] * 100:.1f}% of the allowed rate, "
        f"{results['rate_limited_answers']} x 429 (governor: {results['governor']})",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="upper left")
    _save(fig, opts, "ratelimited")


def accept_chart(opts: Options, results: dict[str, Any]) -> None:
    plt = _plt()
    rows = [(k, v) for k, v in results["targets"].items() if isinstance(v, dict)]
    labels = [k.replace("_", "\n") for k, _ in rows]
    colors = [
        BARE_COLOR if k == "bare" else PG_COLOR if "postgres" in k else APP_COLOR for k, _ in rows
    ]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    _bars(left, labels, [v["requests_per_s"] for _, v in rows], colors, "")
    left.set_title("accept: POST /notifications per second", fontsize=9)
    _bars(right, labels, [v["p99_ms"] for _, v in rows], colors, " ms")
    right.set_title("p99 latency (lower is better)", fontsize=9)
    _save(fig, opts, "accept")
