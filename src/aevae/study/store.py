"""The run store: an SQLite index of a study's runs (stdlib sqlite3, WAL, transactions).

One row per run: what determines it (model, options, data fingerprint, seed, budget), where its
directory is, its status, headline metrics, timings and library versions. A run's id is a hash of
what determines it, so a study that asks for a run the store has finished reuses it, a killed
study resumes where it stopped, and two studies can share one store.

The store indexes, it never owns: each run directory is complete on its own (config, weights,
history, metrics), and ``rebuild`` recreates the rows from the directories.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STORE_FILE = "runs.sqlite"
STUDY_FILE = "study.json"  # beside it in a study folder: the plan
RUNS_FOLDER = "runs"
RUN_FILE = "run.json"  # inside each run directory: the row's content, for rebuilding
SCHEMA_VERSION = 1
# A run marked running by a process on another machine counts as abandoned after this long.
STALE_SECONDS = 6 * 3600
# The error of a run whose process died while it was marked running (killed, interrupted).
INTERRUPTED = "interrupted: the process that ran it is gone"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    entry TEXT NOT NULL,
    model TEXT NOT NULL,
    options TEXT NOT NULL,
    dataset TEXT NOT NULL,
    data_fingerprint TEXT NOT NULL,
    seed INTEGER NOT NULL,
    budget TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    path TEXT NOT NULL,
    metrics TEXT,
    train_seconds REAL,
    evaluation_seconds REAL,
    versions TEXT,
    device TEXT,
    owner TEXT,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_data ON runs (dataset, data_fingerprint);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class StoreError(ValueError):
    """The store file cannot be used (corrupt, not a store, wrong version)."""


@dataclass
class RunRow:
    id: str
    entry: str
    model: str
    options: dict
    dataset: str
    data_fingerprint: str
    seed: int
    budget: str
    status: str
    path: str
    metrics: dict | None
    train_seconds: float | None
    evaluation_seconds: float | None
    versions: dict | None
    device: str | None
    owner: str | None
    error: str | None
    created: float
    updated: float

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> RunRow:
        values = dict(row)
        for key in ("options", "metrics", "versions"):
            values[key] = json.loads(values[key]) if values[key] is not None else None
        return cls(**values)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str | None, updated: float) -> bool:
    """Whether the process that marked a run as running may still be at it."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return time.time() - updated < STALE_SECONDS
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return not _zombie(int(pid))


def _zombie(pid: int) -> bool:
    """A killed process its parent has not yet reaped still answers kill(pid, 0)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def interrupted(row: RunRow) -> bool:
    """Whether a run was cut off, its process gone (marked so, or left running by a store
    open read-only): unfinished work, which the next study that plans it trains again."""
    if row.status == "running":
        return row.owner != _owner() and not _owner_alive(row.owner, row.updated)
    return row.status == "failed" and row.error == INTERRUPTED


class RunStore:
    """Open (or create) the store at ``path``; run directories live in ``runs/`` beside it.
    ``read_only``: open an existing store without writing anything (a listing, an archived or
    read-only study folder); it changes no row."""

    def __init__(self, path: str | os.PathLike, read_only: bool = False):
        self.path = Path(path).resolve()
        self.read_only = read_only
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.runs_directory = self.path.parent / RUNS_FOLDER
        try:
            self._connection = self._connect()
            self._connection.row_factory = sqlite3.Row
            # Before anything is written (even the journal mode): another program's database
            # is refused untouched.
            tables = {row[0] for row in self._connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "meta" not in tables:
                raise StoreError(f"{self.path}: not a run store (an SQLite database with the "
                                 f"tables {', '.join(sorted(tables))}); choose another file")
            if read_only:
                if not tables:
                    raise StoreError(f"{self.path}: not a run store (it holds no tables)")
                row = self._connection.execute(
                    "SELECT value FROM meta WHERE key = 'schema'").fetchone()
                version = None if row is None else row[0]
            else:
                version = self._create()
        except (sqlite3.DatabaseError, StoreError) as error:
            if hasattr(self, "_connection"):
                self._connection.close()
            if isinstance(error, StoreError):
                raise
            raise StoreError(f"{self.path}: not a usable run store ({error})") from None
        if version != str(SCHEMA_VERSION):
            self._connection.close()
            raise StoreError(f"{self.path}: run store schema {version}, this aevae reads "
                             f"{SCHEMA_VERSION}")

    def _connect(self) -> sqlite3.Connection:
        if not self.read_only:
            return sqlite3.connect(self.path, timeout=60, isolation_level=None)
        uri, connection = self.path.as_uri() + "?mode=ro", None
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)
            connection.execute("SELECT 1 FROM sqlite_master LIMIT 1")  # opens the file
            return connection
        except sqlite3.OperationalError as error:
            if connection is not None:
                connection.close()
            if "unable to open" not in str(error):
                raise
        # A WAL store in a folder this process cannot write: SQLite cannot make its
        # shared-memory file there, so read the file as one that does not change; that
        # reading skips the write-ahead log, so a log still holding runs is refused.
        log = self.path.with_name(self.path.name + "-wal")
        if log.is_file() and log.stat().st_size > 0:
            raise StoreError(f"{self.path}: cannot read it in this read-only folder: its "
                             f"latest runs are still in {log.name} (copy the folder somewhere "
                             "writable, or open it once where it can be written)")
        return sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)

    def _create(self) -> str:
        """The journal mode and the tables (kept where they exist); the schema version."""
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA busy_timeout=60000")
        with self.transaction() as cursor:
            # executescript would commit on its own; one statement at a time stays inside.
            for statement in SCHEMA.strip().split(";"):
                if statement.strip():
                    cursor.execute(statement)
            cursor.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                           (str(SCHEMA_VERSION),))
            return cursor.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0]

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exception) -> None:
        self.close()

    @contextmanager
    def _reported(self) -> Iterator[None]:
        """sqlite3's errors (a file damaged since it was opened, a full disk) as one line that
        names the store."""
        try:
            yield
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path}: not a usable run store ({error})") from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """An IMMEDIATE transaction: the write lock is taken at the start, so two processes
        never both see a run as free and both claim it."""
        with self._reported():
            cursor = self._connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                # SQLite may have rolled back already (a full disk does).
                if self._connection.in_transaction:
                    cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def run_directory(self, run_id: str) -> Path:
        return self.runs_directory / run_id

    # ----- reading -----------------------------------------------------------------------
    def get(self, run_id: str) -> RunRow | None:
        with self._reported():
            row = self._connection.execute("SELECT * FROM runs WHERE id = ?",
                                           (run_id,)).fetchone()
        return None if row is None else RunRow.from_sql(row)

    def select(self, *, model: str | None = None, dataset: str | None = None,
               status: str | None = None, budget: str | None = None,
               seed: int | None = None) -> list[RunRow]:
        """Rows matching every filter given (``model``: a model's name or an entry's key),
        oldest first. Runs left marked running by a process that is gone are first marked
        failed (``recover_abandoned``), unless the store is open read-only (``interrupted``
        tells them)."""
        if not self.read_only:
            self.recover_abandoned()
        clauses, values = [], []
        if model is not None:  # a model's name, or one roster entry's key
            clauses.append("(model = ? OR entry = ?)")
            values += [model, model]
        for column, value in (("dataset", dataset), ("status", status),
                              ("budget", budget), ("seed", seed)):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._reported():
            rows = self._connection.execute(f"SELECT * FROM runs{where} ORDER BY created, id",
                                            values).fetchall()
        return [RunRow.from_sql(row) for row in rows]

    def recover_abandoned(self) -> list[str]:
        """Mark failed (error ``INTERRUPTED``) the runs marked running whose owner is gone: a
        study killed or interrupted mid-run. The next study claims them again. Returns their
        ids."""
        with self._reported():  # a read first: most stores hold no such run, and stay unwritten
            if self._connection.execute(
                    "SELECT 1 FROM runs WHERE status = 'running' LIMIT 1").fetchone() is None:
                return []
        with self.transaction() as cursor:
            rows = cursor.execute("SELECT id, owner, updated FROM runs WHERE status = 'running'"
                                  ).fetchall()
            gone = [row["id"] for row in rows
                    if row["owner"] != _owner() and not _owner_alive(row["owner"], row["updated"])]
            now = time.time()
            for run_id in gone:
                cursor.execute("UPDATE runs SET status = 'failed', error = ?, owner = NULL, "
                               "updated = ? WHERE id = ? AND status = 'running'",
                               (INTERRUPTED, now, run_id))
        return gone

    def count_finished(self, run_ids: list[str]) -> int:
        marks = ", ".join("?" for _ in run_ids)
        with self._reported():
            row = self._connection.execute(
                f"SELECT COUNT(*) FROM runs WHERE status = 'finished' AND id IN ({marks})",
                run_ids).fetchone()
        return int(row[0])

    # ----- claiming and finishing ------------------------------------------------------------
    def claim(self, run_id: str, description: dict, *, redo: bool = False) -> str:
        """Mark a run as ours to do. Returns "finished" (reuse it), "busy" (another live
        process is doing it) or "claimed". ``description`` holds the identifying columns;
        ``redo`` claims a finished run again (its directory was lost)."""
        now = time.time()
        with self.transaction() as cursor:
            row = cursor.execute("SELECT status, owner, updated FROM runs WHERE id = ?",
                                 (run_id,)).fetchone()
            if row is not None and row["status"] == "finished" and not redo:
                return "finished"
            if (row is not None and row["status"] == "running" and row["owner"] != _owner()
                    and _owner_alive(row["owner"], row["updated"])):
                return "busy"
            columns = {
                "id": run_id,
                "entry": description["entry"],
                "model": description["model"],
                "options": json.dumps(description["options"], sort_keys=True),
                "dataset": description["dataset"],
                "data_fingerprint": description["data_fingerprint"],
                "seed": int(description["seed"]),
                "budget": description["budget"],
                "status": "running",
                "path": str(self.run_directory(run_id)),
                "owner": _owner(),
                "error": None,
                "created": now,
                "updated": now,
            }
            if row is None:
                names = ", ".join(columns)
                marks = ", ".join("?" for _ in columns)
                cursor.execute(f"INSERT INTO runs ({names}) VALUES ({marks})",
                               list(columns.values()))
            else:
                cursor.execute("UPDATE runs SET status = 'running', owner = ?, error = NULL, "
                               "updated = ? WHERE id = ?", (_owner(), now, run_id))
        return "claimed"

    def finish(self, run_id: str, *, metrics: dict, train_seconds: float,
               evaluation_seconds: float, versions: dict, device: str) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE runs SET status = 'finished', metrics = ?, train_seconds = ?, "
                "evaluation_seconds = ?, versions = ?, device = ?, owner = NULL, updated = ? "
                "WHERE id = ?",
                (json.dumps(metrics), train_seconds, evaluation_seconds, json.dumps(versions),
                 device, time.time(), run_id))

    def fail(self, run_id: str, error: str) -> None:
        with self.transaction() as cursor:
            cursor.execute("UPDATE runs SET status = 'failed', error = ?, owner = NULL, "
                           "updated = ? WHERE id = ?", (error, time.time(), run_id))

    def release(self, run_id: str) -> None:
        """Give back a claimed run untouched (an interrupted study): no longer ours."""
        with self.transaction() as cursor:
            cursor.execute("UPDATE runs SET owner = NULL, updated = ? WHERE id = ? AND "
                           "status = 'running' AND owner = ?", (time.time(), run_id, _owner()))

    # ----- rebuilding -----------------------------------------------------------------------
    def insert_finished(self, row: dict) -> None:
        """Add a finished run read back from its directory (``rebuild``); existing rows win."""
        with self.transaction() as cursor:
            columns = {key: (json.dumps(value) if isinstance(value, dict) else value)
                       for key, value in row.items()}
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            cursor.execute(f"INSERT OR IGNORE INTO runs ({names}) VALUES ({marks})",
                           list(columns.values()))


# ----- a study folder's plan ------------------------------------------------------------------
# What the answer reads from study.json.
STUDY_KEYS = ("settings", "budget", "preset", "data", "data_info", "shared_options", "roster",
              "models", "runs", "store", "metric_groups", "device")


def load_study(out) -> dict:
    """study.json of the study in ``out``, checked; a study folder moved or copied since it ran
    has its own store and runs read where they are now, not where they were."""
    from ..io import CorruptFileError, read_json

    out = Path(out)
    path = out / STUDY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{out} holds no study: {STUDY_FILE} is missing (run `aevae "
                                "compare --out DIR` first)")
    study = read_json(path)
    missing = ([key for key in STUDY_KEYS if key not in study] if isinstance(study, dict)
               else list(STUDY_KEYS))
    if missing or not isinstance(study["runs"], list) or not all(
            isinstance(run, dict) and {"id", "entry", "seed", "path"} <= set(run)
            for run in study["runs"]):
        raise CorruptFileError(f"{path}: not a study's {STUDY_FILE} (missing or damaged: "
                               f"{', '.join(missing) or 'runs'})")
    return _relocated(study, out)


def _relocated(study: dict, out: Path) -> dict:
    store, here = Path(study["store"]), out / STORE_FILE
    if store.name != STORE_FILE or not here.is_file() or store.resolve() == here.resolve():
        return study  # where it ran, or a store shared from elsewhere
    before = store.parent

    def moved(path: str) -> str:
        try:
            return str(out / Path(path).relative_to(before))
        except ValueError:
            return path

    return {**study, "store": str(here),
            "runs": [{**run, "path": moved(run["path"])} for run in study["runs"]]}
