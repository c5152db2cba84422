"""``python -m tests.load``: the benchmark suite (not part of the test run). See tests/load/bench.py."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tests.load.bench import Options, main

RESULTS = Path(__file__).parent / "results" / "latest.json"


def options(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m tests.load",
        description="Benchmark Tessera beside its limits and oidc-provider: a table, JSON and a chart.",
    )
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk run (10)")
    parser.add_argument(
        "--runs", type=int, default=3, help="rounds: runs of each scenario beside its limit and the peer (3)"
    )
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument(
        "--memory-tokens", type=int, default=1_000_000, help="tokens to issue before reading RSS (1000000)"
    )
    parser.add_argument("--no-peer", action="store_true", help="skip oidc-provider (no Node.js here)")
    parser.add_argument(
        "--output", type=Path, help=f"results file ({RESULTS}; none with --quick); the chart goes beside it"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 s per scenario, once, 16 connections (only --no-peer and --output apply)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.seconds <= 0 or args.connections < 1 or args.memory_tokens < 0:
        parser.error("--runs and --connections must be at least 1, --seconds positive")
    if args.quick:
        return Options(
            seconds=1,
            runs=1,
            connections=16,
            memory_tokens=2000,
            peer=not args.no_peer,
            output=args.output,
            quick=True,
        )
    return Options(
        seconds=args.seconds,
        runs=args.runs,
        connections=args.connections,
        memory_tokens=args.memory_tokens,
        peer=not args.no_peer,
        output=args.output or RESULTS,
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main(options(sys.argv[1:]))))
