"""The importer's routes, one module per group; `importer.app` registers their blueprints."""
