"""Command groups of `skyrelay`, one module each; `skyrelay.cli` adds them to the root group."""
