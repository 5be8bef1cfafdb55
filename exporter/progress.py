"""The progress a sync shows on a terminal."""

import sys

from exporter.report import human_bytes


class NoProgress:
    """Stands in for the progress bar when none is shown (tqdm is then not even imported:
    it is a large part of a sync's start-up)."""

    def update(self, count: int) -> None: ...
    def set_postfix_str(self, text: str, refresh: bool = True) -> None: ...
    def close(self) -> None: ...


def progress_bar(total: int, name: str):
    from tqdm import tqdm
    return tqdm(total=total, unit="entity", desc=name, file=sys.stderr, dynamic_ncols=True)


def advance(bar, entities: int, counted) -> None:
    """`entities` more are done; the bar shows the bytes sent so far beside them (`counted`:
    the transport or lanes that count them)."""
    bar.update(entities)
    bar.set_postfix_str(human_bytes(counted.bytes_uploaded), refresh=False)
