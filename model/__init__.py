"""The archive: entities, schema, blob store, and the classes that own all storage I/O.

Imports neither Flask nor requests: the importer and the exporter both stand on it.
"""
