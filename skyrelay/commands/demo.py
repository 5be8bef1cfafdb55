"""`skyrelay demo`: two sites on loopback, data replicated and verified (see skyrelay/demo.py)."""

import sys
from pathlib import Path

import click


@click.command()
@click.option("--dir", "folder", default="var/demo", show_default=True, metavar="PATH",
              help="Where the two demo sites live (emptied first).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: when standard error is a terminal).")
def demo(folder, progress):
    """Start two sites, replicate generated data from one to the other, verify every
    byte by MD5, stop both."""
    from skyrelay.demo import run_demo
    progress = sys.stderr.isatty() if progress is None else progress
    if not run_demo(Path(folder).resolve(), click.echo, progress):
        sys.exit(1)
