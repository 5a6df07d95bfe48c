"""`python -m bench [send|ledger|fanout|ratelimited|ratelimited_two|accept|realtime|scheduler ...]
[--quick]`.

Runs the named benchmarks (all of them by default), prints figures and ratios measured in the
same run, and writes bench/results/<name>.json and docs/bench/<name>.png. `--quick` runs a few
seconds each (a smoke check for `make test`) and writes under var/bench/ instead, so the
published figures are never overwritten by a smoke run. Exits non-zero if any benchmark crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
import traceback

from bench.common import Options, say

BENCHMARKS = (
    "send",
    "ledger",
    "fanout",
    "ratelimited",
    "ratelimited_two",
    "accept",
    "realtime",
    "scheduler",
)


def redraw(names: list[str], opts: Options) -> int:
    from bench import charts

    for name in names:
        path = opts.results_dir / f"{name}.json"
        if not path.exists():
            say(f"{name}: no {path}; run the benchmark first")
            continue
        chart = getattr(charts, f"{name}_chart", None)
        if chart is None:
            say(f"{name}: no chart (figures only)")
            continue
        chart(opts, json.loads(path.read_text())["results"])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"default all: {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds each (smoke check)")
    parser.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    parser.add_argument("--no-pg", action="store_true", help="skip the PostgreSQL parts")
    parser.add_argument(
        "--redraw", action="store_true", help="only redraw the charts from the saved JSON results"
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        metavar="N",
        help="send: requests in flight (default 16); off the default the figures go to "
        "send-inflight-N.json and no chart is drawn",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="send: paired rounds (forwarder, then the app), each in fresh servers (default 5; "
        "2 with --quick); the figures are the median round's, and each round is kept",
    )
    parser.add_argument(
        "--requests",
        type=int,
        metavar="N",
        help="send: requests per target and round (default 2,000; 150 with --quick); off the "
        "default the figures go to send-inflight-K-requests-N.json and no chart is drawn "
        "(issue 10 measured 10 s rounds: ~40,000 at 32 in flight here)",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    names = list(dict.fromkeys(args.names)) or list(BENCHMARKS)
    if args.in_flight is not None and not 1 <= args.in_flight <= 256:
        parser.error("--in-flight takes 1 to 256")
    if args.rounds is not None and not 1 <= args.rounds <= 20:
        parser.error("--rounds takes 1 to 20")
    if args.requests is not None and not 10 <= args.requests <= 200_000:
        parser.error("--requests takes 10 to 200000")
    opts = Options(
        quick=args.quick,
        charts=not args.no_charts,
        pg=not args.no_pg,
        in_flight=args.in_flight,
        rounds=args.rounds,
        requests=args.requests,
    )
    if args.redraw:
        return redraw(names, opts)
    failed: list[str] = []
    started = time.perf_counter()
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        t0 = time.perf_counter()
        try:
            asyncio.run(module.run(opts))
        except Exception:
            traceback.print_exc()
            say(f"{name}: CRASHED")
            failed.append(name)
        say(f"  ({name} took {time.perf_counter() - t0:.1f} s)\n")
    total = time.perf_counter() - started
    if failed:
        say(f"bench: {len(failed)} of {len(names)} crashed ({', '.join(failed)}) in {total:.0f} s")
        return 1
    say(f"bench: {len(names)} benchmark(s) done in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
