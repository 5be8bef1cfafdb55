"""JSON objects read from the database that keep the text they were read from.

An exporter reads each entity's stored JSON, decides what to do from the parsed object, and
sends the entity on. Encoding the parsed objects again, once to size a batch and once per
request, would be work for nothing: the stored text is already the entity's JSON, so it is
sent as it is.
"""

import json
from typing import Any

class StoredJson(dict):
    """The parsed object, with `text`, the JSON it came from. Read-only by convention: the
    text would not follow a change."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        super().__init__(json.loads(text))
        self.text = text


def json_text(value: Any) -> str:
    """Compact JSON of `value`, with the stored text of every StoredJson inside it."""
    if isinstance(value, StoredJson):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(key))}:{json_text(item)}"
                              for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(json_text(item) for item in value) + "]"
    return json.dumps(value, separators=(",", ":"))
