"""The run store on its own: claims, finishing, failing and releasing runs, owners that died,
filters, transactions, and files that are not (or no longer) run stores."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from aevae.cli import main
from aevae.study.store import STALE_SECONDS, RunStore, StoreError, _owner

DESCRIPTION = {"entry": "vae", "model": "vae", "options": {"latent_dim": 2}, "dataset": "digits",
               "data_fingerprint": "f1", "seed": 0, "budget": "tiny"}
FINISHED = {"metrics": {"compression.mse": 0.5}, "train_seconds": 1.0, "evaluation_seconds": 2.0,
            "versions": {"aevae": "0"}, "device": "cpu"}


def described(**changes) -> dict:
    return {**DESCRIPTION, **changes}


@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / "runs.sqlite") as opened:
        yield opened


def set_owner(store: RunStore, run_id: str, owner: str | None, updated: float | None = None):
    """Change a row from another connection, as another process would."""
    with sqlite3.connect(store.path) as connection:
        connection.execute("UPDATE runs SET owner = ?, updated = ? WHERE id = ?",
                           (owner, time.time() if updated is None else updated, run_id))


def test_claim_finish_and_reuse(store, campaign):
    assert store.claim("a", described()) == "claimed"
    row = store.get("a")
    assert (row.status, row.owner, row.model, row.options) == ("running", _owner(), "vae",
                                                               {"latent_dim": 2})
    assert row.path == str(store.run_directory("a"))
    assert store.claim("a", described()) == "claimed"  # our own claim, again
    store.finish("a", **FINISHED)
    row = store.get("a")
    assert (row.status, row.owner, row.metrics, row.device) == ("finished", None,
                                                                {"compression.mse": 0.5}, "cpu")
    assert store.claim("a", described()) == "finished"
    assert store.claim("a", described(), redo=True) == "claimed"  # its files were lost
    assert store.get("a").status == "running"
    campaign.record("store", "claims", "ok")


def test_fail_then_claim_again_and_release(store, campaign):
    store.claim("a", described())
    store.fail("a", "RuntimeError: boom")
    row = store.get("a")
    assert (row.status, row.error, row.owner) == ("failed", "RuntimeError: boom", None)
    assert store.claim("a", described()) == "claimed"
    assert store.get("a").error is None
    store.release("a")
    row = store.get("a")
    assert (row.status, row.owner) == ("running", None)
    assert store.claim("a", described()) == "claimed"
    # Release gives back only our own claim.
    set_owner(store, "a", f"{socket.gethostname()}:{os.getppid()}")
    store.release("a")
    assert store.get("a").owner == f"{socket.gethostname()}:{os.getppid()}"
    campaign.record("store", "fail and release", "ok")


def test_a_run_held_by_a_live_process_is_busy_until_it_dies(store, campaign):
    store.claim("a", described())
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        set_owner(store, "a", f"{socket.gethostname()}:{holder.pid}")
        assert store.claim("a", described()) == "busy"
        holder.kill()
        # Killed but not yet reaped: a zombie still answers kill(pid, 0), and is no owner.
        deadline = time.time() + 10
        while store.claim("a", described()) == "busy" and time.time() < deadline:
            time.sleep(0.05)
        assert store.get("a").owner == _owner()
    finally:
        holder.kill()
        holder.wait()
    # Reaped: the pid is gone altogether.
    set_owner(store, "a", f"{socket.gethostname()}:{holder.pid}")
    assert store.claim("a", described()) == "claimed"
    campaign.record("store", "dead owner reclaimed", "ok")


def test_a_run_held_on_another_machine_is_busy_until_stale(store, campaign):
    store.claim("a", described())
    set_owner(store, "a", "some-other-host:123")
    assert store.claim("a", described()) == "busy"
    set_owner(store, "a", "some-other-host:123", updated=time.time() - STALE_SECONDS - 1)
    assert store.claim("a", described()) == "claimed"
    campaign.record("store", "stale owner reclaimed", "ok")


def test_select_filters_and_counts(store, campaign):
    rows = [("a", described(model="ae", entry="ae")), ("b", described(seed=1)),
            ("c", described(dataset="mnist", budget="quick")), ("d", described(seed=2))]
    for run_id, description in rows:
        store.claim(run_id, description)
        time.sleep(0.002)  # distinct creation times: oldest first
    store.finish("a", **FINISHED)
    store.finish("d", **FINISHED)
    store.fail("b", "diverged")
    assert [row.id for row in store.select()] == ["a", "b", "c", "d"]
    assert [row.id for row in store.select(model="vae")] == ["b", "c", "d"]
    assert [row.id for row in store.select(dataset="mnist")] == ["c"]
    assert [row.id for row in store.select(status="finished")] == ["a", "d"]
    assert [row.id for row in store.select(status="failed")] == ["b"]
    assert [row.id for row in store.select(budget="tiny", seed=2)] == ["d"]
    assert store.select(model="vae", seed=0, dataset="digits") == []
    assert store.count_finished(["a", "b", "c", "d", "missing"]) == 2
    campaign.record("store", "select filters", "ok")


def test_a_failed_transaction_leaves_nothing(store, campaign):
    with pytest.raises(RuntimeError):
        with store.transaction() as cursor:
            cursor.execute("INSERT INTO meta VALUES ('x', 'y')")
            raise RuntimeError("interrupted")
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM meta WHERE key = 'x'").fetchone() == (0,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    campaign.record("store", "rollback", "ok")


def test_two_connections_see_each_others_claims(tmp_path, campaign):
    with RunStore(tmp_path / "runs.sqlite") as first, RunStore(tmp_path / "runs.sqlite") as second:
        assert first.claim("a", described()) == "claimed"
        first.finish("a", **FINISHED)
        assert second.claim("a", described()) == "finished"
        assert second.get("a").metrics == FINISHED["metrics"]
    campaign.record("store", "shared", "ok")


# ----- files that are not stores ----------------------------------------------------------------
def a_store_with_rows(path):
    with RunStore(path) as store:
        for index in range(40):
            store.claim(f"run-{index}", described(seed=index, options={"pad": "x" * 500}))
    return path


def other_database(table: str):
    def make(path):
        with sqlite3.connect(path) as connection:
            connection.execute(f"CREATE TABLE {table} (name TEXT)")
            connection.execute(f"INSERT INTO {table} VALUES ('mine')")
    return make


def garbled_pages(path):
    a_store_with_rows(path)
    raw = bytearray(path.read_bytes())
    raw[4096:] = bytes(len(raw) - 4096)  # every page after the first zeroed
    path.write_bytes(bytes(raw))


def newer_schema(path):
    RunStore(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")


def checkpointed(path):
    a_store_with_rows(path)
    with sqlite3.connect(path) as connection:  # fold the WAL in, so the file holds the rows
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@pytest.mark.parametrize(("make", "message"), [
    (lambda path: path.write_bytes(os.urandom(3000)), "not a usable run store"),
    (lambda path: path.write_text("run,status\nvae,finished\n"), "not a usable run store"),
    (lambda path: path.mkdir(), "not a usable run store"),
    (other_database("runs"), "not a run store"),
    (other_database("users"), "not a run store"),
    (newer_schema, "run store schema 99"),
    (garbled_pages, "run store"),
    (lambda path: (checkpointed(path), path.write_bytes(path.read_bytes()[:6000])),
     "run store"),
], ids=["random bytes", "text", "a folder", "another database with runs",
         "another database", "newer schema",
        "zeroed pages", "truncated"])
def test_a_file_that_is_not_a_store_is_one_line_naming_it(tmp_path, capsys, campaign, make,
                                                          message):
    path = tmp_path / "runs.sqlite"
    make(path)
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(StoreError) as caught:
        with RunStore(path) as store:
            store.select()  # damage deep in the file shows when the rows are read
            store.claim("new", described())
    text = str(caught.value)
    assert "\n" not in text and str(path) in text and message in text, text
    if path.is_file():
        code = main(["runs", str(path)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and str(path) in err, err
    if before is not None and "not a" in message:  # a file that is not a store stays as it was
        assert path.read_bytes() == before
    campaign.record("store", "not a store", "StoreError")


@pytest.mark.regression
def test_another_programs_database_is_refused_untouched(tmp_path):
    # It was adopted before: the store's tables added and the journal switched to WAL.
    path = tmp_path / "app.sqlite"
    other_database("users")(path)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a run store .*the tables users"):
        RunStore(path)
    assert path.read_bytes() == before


@pytest.mark.regression
def test_a_store_damaged_after_opening_is_one_line(tmp_path):
    # sqlite3.DatabaseError escaped select and claim before (a traceback in aevae compare).
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        for index in range(40):
            store.claim(f"run-{index}", described(seed=index, options={"pad": "x" * 500}))
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        raw = bytearray(path.read_bytes())
        raw[4096:] = bytes(len(raw) - 4096)
        with open(path, "r+b") as file:
            file.write(bytes(raw))
        for call in (store.select, lambda: store.claim("new", described()),
                     lambda: store.get("run-3")):
            with pytest.raises(StoreError, match="malformed") as caught:
                call()
            assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_runs_left_running_by_a_dead_process_are_listed_as_interrupted(store, capsys,
                                                                       campaign):
    from aevae.study.store import INTERRUPTED

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid is no process's
    for run_id in ("killed", "released", "ours"):
        store.claim(run_id, described(entry=run_id))
    set_owner(store, "killed", f"{socket.gethostname()}:{gone.pid}")
    set_owner(store, "released", None)  # what an interrupted study leaves
    code = main(["runs", str(store.path)])
    printed = capsys.readouterr().out
    listed = {line.split()[0]: line.split()[5] for line in printed.splitlines()[2:]}
    assert code == 0 and listed == {"killed": "interrupted", "released": "interrupted",
                                    "ours": "running"}  # only our own live claim runs
    assert printed.count("the process that ran it is gone (resumable") == 2
    assert store.get("killed").status == "running"  # a listing changes no row
    rows = {row.id: row for row in store.select()}
    assert (rows["killed"].status, rows["killed"].error, rows["killed"].owner) == (
        "failed", INTERRUPTED, None)
    assert rows["released"].status == "failed" and rows["ours"].status == "running"
    assert store.select(status="running") == [rows["ours"]]
    assert store.claim("killed", described(entry="killed")) == "claimed"  # the next study's
    campaign.record("store", "dead owner listed", "ok")


def test_runs_lists_a_read_only_store_and_shows_why_runs_did_not_finish(tmp_path, capsys,
                                                                      monkeypatch):
    """`aevae runs` on a read-only (archived) study failed: 'not a usable run store (unable to
    open database file)'; and an interrupted run showed as 'failed' with no reason."""
    folder = tmp_path / "study"
    path = folder / "runs.sqlite"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with RunStore(path) as store:
        for run_id in ("done", "killed", "broken"):
            store.claim(run_id, described(entry=run_id))
        store.finish("done", **FINISHED)
        store.fail("broken", "ValueError: boom")
        set_owner(store, "killed", f"{socket.gethostname()}:{gone.pid}")
    folder.chmod(0o555)
    path.chmod(0o444)
    if os.geteuid() == 0:  # modes do not stop root: refuse what SQLite cannot do there
        connect = sqlite3.connect

        def read_only_folder(database, *arguments, **options):
            if str(folder) in str(database) and "immutable=1" not in str(database):
                raise sqlite3.OperationalError("unable to open database file")
            return connect(database, *arguments, **options)

        monkeypatch.setattr(sqlite3, "connect", read_only_folder)
    try:
        code = main(["runs", str(folder)])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        code = main(["runs", str(folder), "--status", "interrupted"])
        only = capsys.readouterr().out
    finally:
        monkeypatch.undo()
        folder.chmod(0o755)
        path.chmod(0o644)
    lines = {line.split()[0]: line for line in captured.out.splitlines()[2:]}
    assert lines["done"].split()[5] == "finished"
    assert lines["killed"].split()[5] == "interrupted"
    assert "interrupted: the process that ran it is gone (resumable" in lines["killed"]
    assert lines["broken"].split()[5] == "failed" and "ValueError: boom" in lines["broken"]
    assert code == 0 and [line.split()[0] for line in only.splitlines()[2:]] == ["killed"]
    with RunStore(path, read_only=True) as store:
        assert store.get("killed").status == "running"  # not marked failed by the listing


def test_a_read_only_store_whose_log_holds_runs_is_refused_not_read_without_them(
        tmp_path, monkeypatch):
    """Read as a file that does not change (its folder cannot be written), a store skips its
    write-ahead log: runs still in it would be missing from the listing without a word."""
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        store.claim("done", described(entry="done"))
    (tmp_path / "runs.sqlite-wal").write_bytes(b"pending pages")
    connect = sqlite3.connect

    def read_only_folder(database, *arguments, **options):
        if "mode=ro" in str(database) and "immutable=1" not in str(database):
            raise sqlite3.OperationalError("unable to open database file")
        return connect(database, *arguments, **options)

    monkeypatch.setattr(sqlite3, "connect", read_only_folder)
    with pytest.raises(StoreError, match="its latest runs are still in runs.sqlite-wal"):
        RunStore(path, read_only=True)
    (tmp_path / "runs.sqlite-wal").write_bytes(b"")  # an empty log: read as the file alone
    with RunStore(path, read_only=True) as store:
        assert store.get("done") is not None
