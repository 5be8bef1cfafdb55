"""Garbage collection for processes that parse and build many small JSON objects.

CPython's cycle collector runs after every 700 new container objects, and about every
hundredth run walks every object alive. A version 2 batch parses into thousands of dicts
and lists, so every few batches a parse in an importer worker also walked the whole heap
(SQLAlchemy, Flask, the entity cache), which took many times the parse itself. Objects made
at start-up live as long as the process, so they are moved out of the collector's sight
once start-up is done. (Collecting less often as well saved no more time, and left an
exporter holding more uncollected garbage by the end of a large sync.)
"""

import gc


def settle_after_start() -> None:
    """Keep what start-up made out of every later collection."""
    gc.freeze()


def skip_last_collection() -> None:
    """For a process about to end: spare it a last walk over every object still alive (a
    tenth of a second after a large sync)."""
    gc.freeze()
