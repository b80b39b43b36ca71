"""The bot's own small database: events already handled, and messages waiting to be redelivered."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at REAL NOT NULL);
"""


class BotState:
    """Thread-safe access to the bot database (one connection, serialized by a lock)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._seen = 0

    def first_time(self, event_id: str) -> bool:
        """True the first time an event id is seen (across processes sharing the database)."""
        with self._lock:
            cur = self._conn.execute("INSERT OR IGNORE INTO events(event_id, received_at) VALUES (?, ?)",
                                     (event_id, time.time()))
            self._seen += 1
            if self._seen % 1000 == 0:  # now and then, forget events older than Slack's retry window
                self._conn.execute("DELETE FROM events WHERE received_at < ?", (time.time() - 86400,))
            return cur.rowcount == 1

    def queue(self, kind: str, payload: dict, error: str) -> int:
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO outbox(kind, payload, attempts, last_error, created_at) VALUES (?, ?, 1, ?, ?)",
                (kind, json.dumps(payload), error, time.time()))
            return int(cur.lastrowid)

    def pending(self, limit: int = 50) -> list[tuple[int, str, dict]]:
        with self._lock:
            rows = self._conn.execute("SELECT id, kind, payload FROM outbox ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(r[0], r[1], json.loads(r[2])) for r in rows]

    def delivered(self, item_id: int) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM outbox WHERE id=?", (item_id,))

    def failed_again(self, item_id: int, error: str) -> None:
        with self._lock:
            self._conn.execute("UPDATE outbox SET attempts=attempts+1, last_error=? WHERE id=?", (error, item_id))

    def close(self) -> None:
        self._conn.close()
