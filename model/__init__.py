"""Everything both sides share, and all storage I/O, in folders by concept (protocol, store,
archive, uploads, bundles, export, ops) with `site.Site` building each store once.

Imports neither Flask nor requests: the importer and the exporter both stand on it.
"""
