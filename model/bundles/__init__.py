"""Bundles: a site's data in a tar, written by one site and ingested, all or nothing, by
another."""
