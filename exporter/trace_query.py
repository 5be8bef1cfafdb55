"""Ask an export target's site what it recorded under a trace ID (`skyrelay status --target`).

The status routes live at the root of the importer's site (docs/wire.md "Traces"), not under
the import path, so the URL is the target's origin plus `/status/…`. The target's user needs
the role `user` there (the status routes' role), besides `import`.
"""

from urllib.parse import quote, urljoin

from exporter import errors
from exporter.transport import Transport
from model.export.targets import Target


class TraceQueryError(Exception):
    """The target could not say; the message says why."""


def remote_trace(target: Target, trace_id: str, history: bool, timeout_s: float
                 ) -> tuple[dict, list | None]:
    """(summary, history or None) as the target's importer records them."""
    base = urljoin(target.url, f"/status/{quote(trace_id, safe='')}")
    with Transport(target.url, target.user, target.password.reveal(), timeout_s, trace_id,
                   target.ca_bundle) as transport:
        try:
            summary = transport.get_json(base)
            events = transport.get_json(base + "/history") if history else None
        except errors.NotFound:
            raise TraceQueryError(f"target {target.name}: no trace {trace_id} there") from None
        except errors.Forbidden:
            raise TraceQueryError(f"target {target.name}: user {target.user!r} lacks the role "
                                  "'user' there, which the status routes need") from None
        except errors.ExportError as exc:
            raise TraceQueryError(f"target {target.name}: {exc}") from None
    if not isinstance(summary, dict) or (history and not isinstance(events, list)):
        raise TraceQueryError(f"target {target.name}: the answer is not a trace")
    return summary, events
