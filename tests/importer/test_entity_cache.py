"""The entity cache on its own: bounded LRU, per user, misses evict nothing, thread-safe."""

import threading

from importer.entity_cache import EntityCache


def test_entries_are_per_user():
    cache = EntityCache(8)
    cache.put("alice", "id1", "alice's")
    cache.put("bob", "id1", "bob's")
    assert cache.get("alice", "id1") == "alice's"
    assert cache.get("bob", "id1") == "bob's"
    assert cache.get("carol", "id1") is None


def test_a_full_entity_replaces_the_cached_one():
    cache = EntityCache(8)
    cache.put("alice", "id1", "first")
    cache.put("alice", "id1", "second")
    assert cache.get("alice", "id1") == "second"
    assert len(cache) == 1


def test_bounded_least_recently_used_goes_first():
    cache = EntityCache(3)
    for name in ("a", "b", "c"):
        cache.put("u", name, name)
    assert cache.get("u", "a") == "a"          # a is now the most recently used
    cache.put("u", "d", "d")
    assert cache.get("u", "b") is None          # b was the least recently used
    assert [cache.get("u", k) for k in ("a", "c", "d")] == ["a", "c", "d"]
    assert len(cache) == 3


def test_a_miss_evicts_nothing():
    cache = EntityCache(2)
    cache.put("u", "a", 1)
    cache.put("u", "b", 2)
    for i in range(100):
        assert cache.get("u", f"missing{i}") is None
        assert cache.get("other", "a") is None
    assert cache.get("u", "a") == 1 and cache.get("u", "b") == 2


def test_concurrent_use_keeps_the_bound_and_loses_nothing_recent():
    cache = EntityCache(50)
    errors = []

    def work(user: str) -> None:
        try:
            for i in range(2000):
                cache.put(user, f"id{i}", (user, i))
                assert cache.get(user, f"id{i}") in ((user, i), None)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"user{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(cache) == 50
