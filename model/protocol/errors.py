"""The root of every error the model raises for a caller to act on, and the few kinds of
refusal a caller tells apart.

Each domain error subclasses one kind (a target that does not exist is a `NotFound`, a user
name that is taken a `Conflict`), so that a boundary translates by kind, in one table, and
never route by route: the importer maps kinds to HTTP statuses (`importer.errors`), the
command line prints the message and exits 1. `str()` of any of them is a message that says
what is wrong and, where it can, what to do.
"""


class SkyrelayError(Exception):
    """Something a caller asked for cannot be done; nothing was changed."""


class Invalid(SkyrelayError, ValueError):
    """The input breaks a rule (a field, an ID, a setting, a header)."""


class NotFound(SkyrelayError):
    """The thing named does not exist (or is not this caller's to see)."""


class Conflict(SkyrelayError):
    """The request contradicts what is held (a name taken, an offset moved on)."""


class OverLimit(SkyrelayError):
    """The input is larger than a configured limit allows."""


class Busy(SkyrelayError):
    """Something else holds what is needed right now; the same request may succeed shortly."""
