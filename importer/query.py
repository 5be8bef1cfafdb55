"""Query parameters, read and checked in one place.

A parameter absent or given empty (`?after=`) is not given. Text a parameter cannot hold is
an `EntityError` naming it, answered 400 (`importer.errors`); integers are read by the
codec's one rule for integers written as text (`codec.decimal`: ASCII digits, 64 bits), so
no value a database would refuse with an error of its own (2^63 and up) gets past a route.
"""

from typing import Any, Callable

from flask import request

from model.protocol import codec
from model.protocol.codec import EntityError

Reader = Callable[[str, str], Any]


def param(name: str, read: Reader) -> Any:
    """The parameter `name` read by `read(text, name)`; None when absent or empty."""
    text = request.args.get(name, "")
    if text == "":
        return None
    return read(text, name)


def required(name: str, read: Reader) -> Any:
    """Like `param`, but absent or empty is refused."""
    value = param(name, read)
    if value is None:
        raise EntityError(name, "is required")
    return value


def millis(text: str, field: str) -> int:
    """Milliseconds since the epoch."""
    return codec.decimal(text, field, minimum=0,
                         expected="milliseconds since the epoch (a non-negative integer)")


def whole_number(text: str, field: str) -> int:
    """A count or a number (a job's): a non-negative integer."""
    return codec.decimal(text, field, minimum=0, expected="a non-negative integer")
