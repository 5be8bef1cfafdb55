"""Garbage collection for processes that parse and build many small JSON objects.

CPython's cycle collector runs after every 700 new container objects and, every hundredth
time, walks every object alive. A version 2 batch of 500 events parses into some 10,000
dicts and lists, so the importer's workers and the exporter walked their whole start-up heap
(SQLAlchemy, Flask, cached entities) several times per batch: a 400 KiB body took 3 ms to
parse, or 40-50 ms when such a walk fell into it. Almost all of that garbage is freed by
reference counting anyway; only cycles wait for the collector, and they can wait longer.
"""

import gc

# (young, middle, old) collection thresholds; CPython's defaults are (700, 10, 10).
THRESHOLDS = (20_000, 20, 20)


def settle_after_start() -> None:
    """Keep what start-up made out of every later collection, and collect less often."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


def skip_last_collection() -> None:
    """For a process about to end: spare it a last walk over every object still alive (a
    tenth of a second after a large sync)."""
    gc.freeze()
