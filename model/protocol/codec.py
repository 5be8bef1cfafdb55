"""Field readers for the JSON codec: each checks one value and normalises it.

Every reader takes the path of the field (`event.files[1].md5`) so that a refusal names the
field and says what is wrong; all refusals are `EntityError`.

The 64-bit rule lives here, once: every integer from the wire, in an entity, a JSON body, a
query parameter, a header or a path, must fit in 64 signed bits (`int64`), because every
integer column is 64-bit and a database refuses more with an error of its own, not a 400.
Integers written as text go through `decimal`.
"""

import math
import re
import reprlib
from typing import Any, Callable, Mapping

from model.protocol.errors import Invalid

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_DASHED = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_CAMERA = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
DEFAULT_NAMESPACE = "meteorpi"
INT64_MAX = 2 ** 63 - 1
INT64_MIN = -INT64_MAX - 1
# An integer as text: an optional minus and ASCII digits only (str.isdigit() also takes '²',
# which int() refuses, and the digits of other scripts, '٣'). More than 19 digits (after
# leading zeros) never fit in 64 bits, so the text is bounded before int() reads it.
_DECIMAL = re.compile(r"-?[0-9]+")
_INT64_DIGITS = 19


class EntityError(Invalid):
    """An entity breaks the rules of docs/wire.md; `field` is the path of the offending field."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def shown(value: Any) -> str:
    """`value` for a message, at most 60 characters. A list or object is shown by `reprlib`,
    which stops at a few levels and items: a wrong value can be huge or deeply nested, and
    its whole repr would be slow, or overflow the stack."""
    text = repr(value) if isinstance(value, (str, int, float)) else reprlib.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def mapping(value: Any, field: str) -> Mapping:
    # `dict` first: isinstance against typing.Mapping goes through the ABC machinery, and
    # this check runs for every object of every entity validated.
    if not isinstance(value, dict) and not isinstance(value, Mapping):
        raise EntityError(field, f"expected an object, got {shown(value)}")
    return value


def required(data: Mapping, key: str, field: str) -> Any:
    if data.get(key) is None:
        raise EntityError(f"{field}.{key}", "is required")
    return data[key]


def uuid_hex(value: Any, field: str) -> str:
    """A UUID as 32 lowercase hex digits; dashed or upper-case input is normalised."""
    if isinstance(value, str):
        if _HEX32.fullmatch(value):
            return value.lower()
        if _DASHED.fullmatch(value):
            return value.replace("-", "").lower()
    raise EntityError(field, f"expected a UUID as 32 hex digits, got {shown(value)}")


def md5_hex(value: Any, field: str) -> str:
    if isinstance(value, str) and _HEX32.fullmatch(value):
        return value.lower()
    raise EntityError(field, f"expected an MD5 digest as 32 hex digits, got {shown(value)}")


def sha256_hex(value: Any, field: str) -> str:
    if isinstance(value, str) and _HEX64.fullmatch(value):
        return value.lower()
    raise EntityError(field, f"expected a SHA-256 digest as 64 hex digits, got {shown(value)}")


def camera_id(value: Any, field: str) -> str:
    if isinstance(value, str) and _CAMERA.fullmatch(value):
        return value
    raise EntityError(field, "expected 1 to 64 letters, digits or '_.:-', "
                             f"got {shown(value)}")


def text(value: Any, field: str, max_length: int = 1024) -> str:
    """A string every database can store: no NUL (PostgreSQL refuses it), no lone
    surrogate (`"\\ud800"` is valid JSON but not encodable as UTF-8)."""
    if not isinstance(value, str):
        raise EntityError(field, f"expected a string, got {shown(value)}")
    if len(value) > max_length:
        raise EntityError(field, f"longer than {max_length} characters")
    if "\x00" in value:
        raise EntityError(field, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise EntityError(field, "is not valid Unicode (lone surrogate)") from None
    return value


def namespaced(value: Any, field: str) -> str:
    """`ns:name`; a value without a colon is in the `meteorpi` namespace."""
    value = text(value, field, 256)
    if not value or value.startswith(":") or value.endswith(":"):
        raise EntityError(field, f"expected 'namespace:name', got {shown(value)}")
    return value if ":" in value else f"{DEFAULT_NAMESPACE}:{value}"


def number(value: Any, field: str) -> int | float:
    """A finite JSON number, kept as given (an int stays an int, within 64 bits)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EntityError(field, f"expected a number, got {shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise EntityError(field, f"expected a finite number, got {shown(value)}")
    return int64(value, field) if isinstance(value, int) else value


def int64(value: int, field: str) -> int:
    """`value`, if it fits in 64 signed bits: the one range check of every wire integer."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise EntityError(field, f"integer out of the 64-bit range, got {shown(value)}")
    return value


def integer(value: Any, field: str, minimum: int | None = None) -> int:
    """An integer; an integral float (`1427891400000.0`) is accepted and made an int."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise EntityError(field, f"expected an integer, got {shown(value)}")
    if minimum is not None and value < minimum:
        raise EntityError(field, f"must be at least {minimum}, got {shown(value)}")
    return int64(value, field)


def decimal(text: Any, field: str, minimum: int | None = None,
            expected: str = "an integer") -> int:
    """An integer written as text (a query parameter, a header, a path segment): an optional
    '-' and ASCII digits, within 64 bits and at least `minimum`. `expected` says what the
    field holds, for the refusal of text that is no integer at all."""
    if not isinstance(text, str) or not _DECIMAL.fullmatch(text):
        raise EntityError(field, f"expected {expected}, got {shown(text)}")
    if len(text.lstrip("-").lstrip("0")) > _INT64_DIGITS:
        raise EntityError(field, f"integer out of the 64-bit range, got {shown(text)}")
    return integer(int(text), field, minimum)


def millis(value: Any, field: str) -> int:
    """Milliseconds since the Unix epoch."""
    return integer(value, field, minimum=0)


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise EntityError(field, f"expected true or false, got {shown(value)}")
    return value


def listing(value: Any, field: str, item: Callable[[Any, str], Any],
            max_items: int = 10_000) -> tuple:
    if not isinstance(value, list):
        raise EntityError(field, f"expected a list, got {shown(value)}")
    if len(value) > max_items:
        raise EntityError(field, f"more than {max_items} items")
    return tuple(item(element, f"{field}[{index}]") for index, element in enumerate(value))


def optional(data: Mapping, key: str, field: str, reader: Callable[[Any, str], Any]) -> Any:
    value = data.get(key)
    return None if value is None else reader(value, f"{field}.{key}")


def without_nulls(data: dict) -> dict:
    """Keys whose value is None are left out of every encoded entity."""
    return {key: value for key, value in data.items() if value is not None}
