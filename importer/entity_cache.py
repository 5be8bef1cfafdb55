"""The entities exporters sent in full, so that the `cached_entity` form can name them.

Keyed by (user name, entity ID): one exporter can never reach or overwrite another's entry,
even with the same ID. Bounded (least recently used goes first) and per process: a request
that lands on another process simply misses, and a miss answers `continue-nocache`, which
makes the exporter send the full entity again. Worker threads share it, hence the lock
(cachetools caches are not thread-safe, and even a `get` reorders the LRU list).
"""

import threading
from typing import Any

from cachetools import LRUCache


class EntityCache:
    def __init__(self, size: int):
        self._entries = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def put(self, user: str, entity_id: str, entity: Any) -> None:
        """A full entity always replaces the one cached under the same key."""
        with self._lock:
            self._entries[(user, entity_id)] = entity

    def get(self, user: str, entity_id: str) -> Any | None:
        """The entity, or None; a miss changes nothing (no other entry is evicted)."""
        with self._lock:
            return self._entries.get((user, entity_id))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
