"""The service's job store: one SQLite file in WAL mode under the data folder (nothing else to install or start).

A job's row holds what the API reports; its files live in its own folder (``jobs/<id>/``), named by the
server alone. States: ``uploading`` -> ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

STATES = ("uploading", "queued", "running", "done", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    settings TEXT NOT NULL,
    input_kind TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    cancel INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created);
"""


class JobStore:
    """Jobs in ``path`` (SQLite, WAL); safe to share between the server's threads."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def create(self, name: str, settings: dict[str, Any], input_kind: str, state: str = "queued") -> str:
        """A new job (``uploading``: no worker takes it until it is queued); returns its id (made here: 32 hex
        digits, never the client's)."""
        assert state in ("uploading", "queued")
        job_id = uuid.uuid4().hex
        self._exec("INSERT INTO jobs (id, name, state, settings, input_kind, created) VALUES (?, ?, ?, ?, ?, ?)",
                   (job_id, name, state, json.dumps(settings), input_kind, time.time()))
        return job_id

    def get(self, job_id: str) -> dict[str, Any] | None:
        rows = self._exec("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _row(rows[0]) if rows else None

    def list(self) -> list[dict[str, Any]]:
        return [_row(r) for r in self._exec("SELECT * FROM jobs ORDER BY created DESC")]

    def claim(self) -> dict[str, Any] | None:
        """Take the oldest queued job for a worker (atomically: two workers never get the same one)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY created LIMIT 1").fetchone()
                if row is not None:
                    self._db.execute("UPDATE jobs SET state = 'running', started = ?, attempts = attempts + 1 "
                                     "WHERE id = ?", (time.time(), row["id"]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return None if row is None else self.get(row["id"])

    def finish(self, job_id: str, state: str, error: str | None = None) -> None:
        assert state in ("done", "failed", "cancelled", "queued")
        self._exec("UPDATE jobs SET state = ?, error = ?, finished = ? WHERE id = ?",
                   (state, error, None if state == "queued" else time.time(), job_id))

    def request_cancel(self, job_id: str) -> bool:
        """Mark a job to be cancelled: a queued one is cancelled now, a running one by its worker."""
        self._exec("UPDATE jobs SET cancel = 1 WHERE id = ? AND state IN ('queued', 'running')", (job_id,))
        self._exec("UPDATE jobs SET state = 'cancelled', finished = ? WHERE id = ? AND state = 'queued'",
                   (time.time(), job_id))
        job = self.get(job_id)
        return job is not None and (job["state"] == "cancelled" or job["cancel"])

    def delete(self, job_id: str) -> None:
        self._exec("DELETE FROM jobs WHERE id = ?", (job_id,))

    def requeue_interrupted(self) -> int:
        """Put jobs a stopped server left running back in the queue (their workspace resumes); returns how many."""
        with self._lock:
            n = self._db.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running' AND cancel = 0").rowcount
            self._db.execute("UPDATE jobs SET state = 'cancelled', finished = ? WHERE state = 'running' AND cancel = 1",
                             (time.time(),))
            self._db.execute("UPDATE jobs SET state = 'failed', error = 'the upload was interrupted', finished = ? "
                             "WHERE state = 'uploading'", (time.time(),))
        return n

    def count(self, *states: str) -> int:
        marks = ",".join("?" * len(states))
        return int(self._exec(f"SELECT COUNT(*) FROM jobs WHERE state IN ({marks})", states)[0][0])


def _row(r: sqlite3.Row) -> dict[str, Any]:
    d = dict(r)
    d["settings"] = json.loads(d["settings"])
    d["cancel"] = bool(d["cancel"])
    return d
