"""What can go wrong talking to an importer, sorted by what the caller can do about it.

The transport translates every `requests` exception and HTTP error status into one of these,
once; nothing above it looks at status codes or `requests` exceptions. What a sync then does
(whose fault it is, what waits and for how long) is decided in one place, `exporter.retry`.

    ExportError
    ├── RetryableError        the remote may be fine later: back off and retry the target
    │   ├── Unreachable       connection refused, DNS, reset
    │   │   └── TLSError      certificate not trusted, handshake failed
    │   ├── TimedOut          no answer within exporter.timeout_s
    │   └── ServerError       5xx, 429 (with Retry-After when the server gave one)
    └── FinalError            retrying the same request cannot help
        ├── Refused           400, 413 …: the importer refuses this entity
        │   └── NotFound      404/405: no importer at this URL
        ├── AuthError         401: wrong user or password; the target waits for an admin
        │   └── Forbidden     403: the user lacks the role `import`
        └── ProtocolError     an answer that is not the protocol (not JSON, unknown state)
"""


class ExportError(Exception):
    """Base of every exporter error; `str()` is a message an admin can act on."""


class RetryableError(ExportError):
    """The same request may succeed later; safe to retry after a backoff."""


class Unreachable(RetryableError):
    """No connection to the importer (refused, unknown host, reset)."""


class TLSError(Unreachable):
    """TLS failed: the importer's certificate is not trusted or the handshake broke. Retried
    with backoff (a certificate can be renewed), but reported as TLS so the admin can fix
    the CA bundle."""


class TimedOut(RetryableError):
    """The importer did not answer within the timeout."""


class ServerError(RetryableError):
    """5xx or 429 from the importer."""

    def __init__(self, message: str, status: int, retry_after_s: float = 0.0):
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class FinalError(ExportError):
    """Retrying the same request cannot help."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Refused(FinalError):
    """The importer refused this request (400, 413, …); the message is the importer's."""


class NotFound(Refused):
    """404/405: nothing at this URL speaks the import protocol."""


class AuthError(FinalError):
    """401: the importer does not accept this user and password."""


class Forbidden(AuthError):
    """403: the user is known but lacks the role `import`."""


class ProtocolError(FinalError):
    """The answer is not the protocol: not JSON, not an object, an unknown state."""
