"""The bot database's speed on SQLite vs PostgreSQL: N `BotState.first_time(event_id)` calls (the
check every Slack event goes through), median of R rounds, and the ratio.

    .venv/bin/python bench/bot_db.py [--calls 1000] [--rounds 3] [--postgres URL | --no-fsync]

Without --postgres it starts a throwaway local server from Debian's postgresql (tests/pg.py) with
PostgreSQL's default durability (fsync and synchronous commit on, as SQLite's WAL mode syncs each
commit too), over TCP on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.db import describe  # noqa: E402
from bot.state import BotState  # noqa: E402


def bench(database, calls: int, rounds: int) -> list[float]:
    """Seconds per round of `calls` first_time calls with new event ids (each call writes a row)."""
    state = BotState(database)
    try:
        for i in range(50):  # warm up (connection, prepared statements)
            state.first_time(f"warm-{uuid.uuid4()}")
        times = []
        for _ in range(rounds):
            ids = [f"Ev{uuid.uuid4().hex}" for _ in range(calls)]
            started = time.perf_counter()
            for event_id in ids:
                state.first_time(event_id)
            times.append(time.perf_counter() - started)
        return times
    finally:
        state.close()


def report(name: str, database, times: list[float], calls: int) -> float:
    median = statistics.median(times)
    print(f"{name:<11} {median * 1000:8.1f} ms per {calls} calls  ({median / calls * 1e6:7.1f} µs/call; "
          f"rounds: {', '.join(f'{t * 1000:.0f}' for t in times)} ms)  [{describe(database)}]")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="a PostgreSQL URL to use instead of a throwaway local server")
    parser.add_argument("--no-fsync", action="store_true",
                        help="the throwaway server without fsync/synchronous commit (the round trip alone)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        sqlite_path = Path(tmp) / "bot.sqlite"
        sqlite = report("SQLite", sqlite_path, bench(sqlite_path, args.calls, args.rounds), args.calls)
    if args.postgres:
        postgres = report("PostgreSQL", args.postgres, bench(args.postgres, args.calls, args.rounds), args.calls)
    else:
        from tests.pg import PostgresServer, missing_reason

        reason = missing_reason()
        if reason:
            sys.exit(f"no PostgreSQL to measure: {reason} (or pass --postgres URL)")
        with PostgresServer(durable=not args.no_fsync) as server:
            url = server.new_database()
            postgres = report("PostgreSQL", url, bench(url, args.calls, args.rounds), args.calls)
    print(f"ratio       PostgreSQL / SQLite = {postgres / sqlite:.2f}x")


if __name__ == "__main__":
    main()
