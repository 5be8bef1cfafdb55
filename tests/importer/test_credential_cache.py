"""importer.auth.CredentialCache: a verified pair is remembered, and requests arriving
together with the same pair wait for one scrypt check instead of making one each."""

import threading

from importer.auth import CredentialCache
from model.ops.users import Users
from model.store.database import Database


class CountingUsers(Users):
    """The real user table, counting the (slow, scrypt) password checks made."""

    def __init__(self, database):
        super().__init__(database)
        self.checks = 0

    def authenticate(self, name, password):
        self.checks += 1
        return super().authenticate(name, password)


def _users(tmp_path) -> CountingUsers:
    database = Database(f"sqlite:///{tmp_path}/site.db")
    database.migrate()
    users = CountingUsers(database)
    users.add("cam", "right password", ["import"])
    return users


def _all_at_once(cache: CredentialCache, password: str, count: int = 8) -> list:
    start, answers = threading.Barrier(count), []

    def ask():
        start.wait()
        answers.append(cache.authenticate("cam", password))

    threads = [threading.Thread(target=ask) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_requests_arriving_together_share_one_password_check(tmp_path):
    users = _users(tmp_path)
    cache = CredentialCache(users, ttl_s=60)
    answers = _all_at_once(cache, "right password")
    assert [user.name for user in answers] == ["cam"] * 8
    assert users.checks == 1
    assert cache.authenticate("cam", "right password").name == "cam"
    assert users.checks == 1                       # remembered


def test_a_wrong_password_is_checked_every_time_and_never_remembered(tmp_path):
    users = _users(tmp_path)
    cache = CredentialCache(users, ttl_s=60)
    assert _all_at_once(cache, "wrong", count=3) == [None] * 3
    assert users.checks == 3
    assert cache.authenticate("cam", "right password").name == "cam"
    assert users.checks == 4
