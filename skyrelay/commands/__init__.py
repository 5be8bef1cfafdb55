"""Command groups of `skyrelay`; each module has `register(cli)`."""
