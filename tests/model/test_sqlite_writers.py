"""model.store.sqlite_writers: one SQLite writer at a time across threads and processes, the next
one let in as soon as the previous lets go, and a clear DatabaseBusy when no turn comes."""

import multiprocessing
import threading
import time

import pytest

from model.store.database import Database, DatabaseBusy
from model.store.sqlite_writers import SqliteWriters, WritersBusy


def test_a_waiting_thread_writes_as_soon_as_the_writer_before_it_is_done(tmp_path):
    writers = SqliteWriters(str(tmp_path / "site.db"), timeout_s=5)
    turns = []

    def second():
        with writers.turn():
            turns.append(time.monotonic())

    with writers.turn():
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        assert turns == []                       # still waiting its turn
        released = time.monotonic()
    thread.join()
    assert turns[0] - released < 0.05            # not a busy handler's 100 ms nap later
    writers.close()


def test_threads_taking_their_first_turns_at_once_leave_the_lock_free(tmp_path):
    """A worker's first requests arrive together: each thread must end its turn on the
    one lock file it began it on, or a lock is left held and every later writer waits."""
    path = str(tmp_path / "site.db")
    for _ in range(20):
        writers, start, busy = SqliteWriters(path, timeout_s=2), threading.Barrier(4), []

        def write():
            start.wait()
            try:
                with writers.turn():
                    pass
            except WritersBusy as exc:
                busy.append(exc)

        threads = [threading.Thread(target=write) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert busy == []
        writers.close()
        other = SqliteWriters(path, timeout_s=0.2)   # another descriptor: as another process
        with other.turn():
            pass
        other.close()


def test_a_child_forked_while_a_thread_writes_gets_its_own_turns(tmp_path):
    path = str(tmp_path / "site.db")
    writers, holding, release = SqliteWriters(path, timeout_s=5), threading.Event(), \
        threading.Event()

    def hold():
        with writers.turn():
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(10)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_turn_with, args=(writers, results))
    child.start()                      # forked while this process's thread holds its turn
    time.sleep(0.2)
    release.set()
    thread.join()
    child.join(10)
    assert results.get(timeout=5) == "wrote"
    writers.close()


def _turn_with(writers: SqliteWriters, results) -> None:
    try:
        with writers.turn():
            results.put("wrote")
    except WritersBusy as exc:
        results.put(f"busy: {exc}")


def _try_turn(path: str, timeout_s: float, results) -> None:
    _turn_with(SqliteWriters(path, timeout_s), results)


def test_another_process_waits_for_the_turn_and_gives_up_after_its_timeout(tmp_path):
    path = str(tmp_path / "site.db")
    writers = SqliteWriters(path, timeout_s=5)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    with writers.turn():                          # held here: the child cannot write
        child = context.Process(target=_try_turn, args=(path, 0.3, results))
        child.start()
        child.join(10)
        assert results.get(timeout=5).startswith("busy: no turn to write within 0.3 s")
    child = context.Process(target=_try_turn, args=(path, 0.3, results))
    child.start()
    child.join(10)
    assert results.get(timeout=5) == "wrote"
    writers.close()


def test_a_transaction_without_a_turn_is_database_busy_and_writes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/site.db"
    first, second = Database(url, busy_timeout_s=0.3), Database(url, busy_timeout_s=0.3)
    with first.transaction() as tx:
        tx.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with first.transaction() as tx:
        tx.exec_driver_sql("INSERT INTO t VALUES (1)")
        outcome = []
        thread = threading.Thread(target=lambda: outcome.append(_insert(second)))
        thread.start()
        thread.join()
    assert "no turn to write within 0.3 s" in outcome[0]
    with first.reading() as conn:
        assert conn.exec_driver_sql("SELECT x FROM t").scalars().all() == [1]
    first.dispose()
    second.dispose()


def _insert(database: Database) -> str:
    try:
        with database.transaction() as tx:
            tx.exec_driver_sql("INSERT INTO t VALUES (2)")
    except DatabaseBusy as exc:
        return str(exc)
    return "inserted"
