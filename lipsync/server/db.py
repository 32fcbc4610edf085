"""The server's SQLite database (LIPSYNC_HOME/server.db): API keys, jobs and a few secrets.

One short-lived connection per operation: safe across the HTTP and worker threads, and across
processes (the CLI creates keys while the server runs). The file holds secrets: it is created 0600
(SQLite gives its -wal and -shm files the same mode).
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from .. import config
from ..errors import LipsyncError

log = logging.getLogger(__name__)

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


class DatabaseCorrupt(LipsyncError):
    """server.db is not a readable SQLite database."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path} is not a readable database ({reason}); stop the server, move the file aside "
                         f"(mv {path} {path}.corrupt) and start again: it starts with no API keys or jobs")


@contextmanager
def connect(home: Optional[Path] = None) -> Iterator[sqlite3.Connection]:
    """A connection in autocommit mode; use `with conn:` or BEGIN IMMEDIATE for atomic changes."""
    path = db_path(home)
    config.private_dir(path.parent)
    if not path.exists():  # an empty file is a new database; made here so that its mode is ours
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, config.PRIVATE_FILE))
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
        except sqlite3.OperationalError:
            raise  # locked, read-only, disk full: the file itself is fine
        except sqlite3.DatabaseError as exc:
            raise DatabaseCorrupt(path, str(exc)) from None
        yield conn
    finally:
        conn.close()


def open_database(home: Path) -> Optional[str]:
    """At server start: check server.db. A corrupt one is moved aside (kept for inspection) and a fresh
    one started, so that the server and the UI still come up; returns the one line to tell the user."""
    path = db_path(home)
    try:
        with connect(home) as conn:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems == ["ok"]:
            return None
        reason = problems[0]
    except DatabaseCorrupt as exc:
        reason = exc.reason
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, aside.with_name(aside.name + suffix))
    message = (f"{path} was not a readable database ({reason}): moved aside to {aside.name}, starting with an "
               "empty one; its API keys and jobs are gone: make keys again with `lipsync keys create`")
    log.error("%s", message)
    return message


def server_secret(home: Optional[Path] = None) -> str:
    """A random secret made on first use; signs output download links."""
    with connect(home) as conn:
        conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('file_secret', ?)", (secrets.token_hex(32),))
        return conn.execute("SELECT value FROM meta WHERE name = 'file_secret'").fetchone()[0]
