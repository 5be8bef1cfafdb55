"""What a path parameter (`/api/targets/<name>`, `/status/<trace_id>`…) may be: one path
segment of printable text, at most `MAX_LENGTH` characters.

werkzeug's default converter takes any text but '/', so `%00`, a control character or a
segment of thousands of characters would reach a query; PostgreSQL refuses NUL in text with
an error of its own, which would be a 500. Installed once as the app's default converter,
this rule covers every route, those added later too: a path that breaks it names nothing
and is answered 404, like an unknown name. No name, ID or number the importer gives out is
longer or holds such characters.
"""

from flask import Flask
from werkzeug.routing import BaseConverter

MAX_LENGTH = 256


class PathSegment(BaseConverter):
    # Not '/', no C0 or C1 control character, no DEL.
    regex = rf"[^/\x00-\x1f\x7f-\x9f]{{1,{MAX_LENGTH}}}"


def install(app: Flask) -> None:
    """Make `PathSegment` the converter of `<name>` and `<string:name>`; before any route is
    added, as a rule takes its converters when it is added. A path with `//` names nothing
    either: werkzeug would answer it with a redirect (an HTML 308) to the path with one `/`,
    which is no answer for an API client (docs/protocol.md, errors)."""
    app.url_map.converters["default"] = PathSegment
    app.url_map.converters["string"] = PathSegment
    app.url_map.merge_slashes = False
