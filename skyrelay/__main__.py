"""`python -m skyrelay` is the `skyrelay` command (tests use it to run the real program)."""

from skyrelay.cli import main

main()
