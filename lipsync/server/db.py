"""The server's SQLite database (LIPSYNC_HOME/server.db): API keys, jobs and a few secrets.

One short-lived connection per operation: safe across the HTTP and worker threads, and across
processes (the CLI creates keys while the server runs).
"""

from __future__ import annotations

import secrets
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from .. import config

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT UNIQUE,
    hash TEXT NOT NULL,
    webhook_secret TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    state TEXT NOT NULL,            -- queued | running | done
    record TEXT NOT NULL,           -- JobRecord JSON
    form_state TEXT NOT NULL,
    uploads TEXT NOT NULL,          -- {field: local path} of files sent with the request
    webhook TEXT,
    webhook_state TEXT,             -- pending | delivered | failed
    key_id TEXT,
    base_url TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created);
CREATE TABLE IF NOT EXISTS shared_files (
    token TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def db_path(home: Optional[Path] = None) -> Path:
    return Path(home or config.home()) / "server.db"


@contextmanager
def connect(home: Optional[Path] = None) -> Iterator[sqlite3.Connection]:
    """A connection in autocommit mode; use `with conn:` or BEGIN IMMEDIATE for atomic changes."""
    path = db_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
        yield conn
    finally:
        conn.close()


def server_secret(home: Optional[Path] = None) -> str:
    """A random secret made on first use; signs output download links."""
    with connect(home) as conn:
        conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('file_secret', ?)", (secrets.token_hex(32),))
        return conn.execute("SELECT value FROM meta WHERE name = 'file_secret'").fetchone()[0]
