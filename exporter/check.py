"""`target check`: can this site reach the target, log in, and what does the importer speak?

Two requests, neither of which changes anything on the importer: `GET {base}/capabilities`
(version 2 importers answer it), and when that is 404 a version 1 probe, a `cached_entity`
for an ID nobody uses, which any version 1 importer (MeteorPi's too) answers
`continue-nocache` after checking the credentials.
"""

import uuid
from dataclasses import dataclass

from exporter import errors
from exporter.transport import Transport
from model.export.targets import Target
from model.ops.traces import new_trace_id
from model.protocol.vocabulary import CACHED_ENTITY, state_of


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str
    capabilities: dict | None = None


def _advice(exc: errors.ExportError, target: Target) -> str:
    """One actionable sentence per failure an admin can meet."""
    if isinstance(exc, errors.TLSError):
        return (f"TLS failed: {exc}. Check the certificate of {target.url}, or give the "
                "target the CA that signed it (--ca-bundle).")
    if isinstance(exc, errors.Unreachable):
        return (f"unreachable: {exc}. Is the importer running, and are the host and port in "
                f"{target.url} right?")
    if isinstance(exc, errors.TimedOut):
        return f"no answer in time: {exc}. Is the importer overloaded or the link down?"
    if isinstance(exc, errors.Forbidden):
        return (f"forbidden (403): user {target.user!r} exists on the importer but lacks the "
                "role 'import'; ask its admin to grant it (`skyrelay user roles`).")
    if isinstance(exc, errors.AuthError):
        return (f"authentication failed (401): the importer does not accept user "
                f"{target.user!r} with this password; fix it with `skyrelay target set "
                f"{target.name} --password-stdin` (or --user).")
    if isinstance(exc, (errors.NotFound, errors.ProtocolError, errors.Refused)):
        return (f"not a skyrelay/MeteorPi importer at {target.url}: {exc}. Check the URL's "
                "path (usually /import).")
    return f"importer error: {exc}. Try again later; see the importer's log."


def check_target(target: Target, timeout_s: float) -> CheckResult:
    trace_id = new_trace_id()
    with Transport(target.url, target.user, target.password.reveal(), timeout_s, trace_id,
                   target.ca_bundle) as transport:
        try:
            capabilities = transport.capabilities()
            if capabilities is not None:
                versions = ", ".join(str(v) for v in capabilities.get("protocol", []))
                return CheckResult(True, f"ok: {target.url} speaks protocol versions "
                                   f"{versions}", capabilities)
            answer = transport.post_json({"type": CACHED_ENTITY,
                                          "cached_entity_id": uuid.uuid4().hex})
        except errors.ExportError as exc:
            return CheckResult(False, _advice(exc, target))
    if state_of(answer) is None:
        return CheckResult(False, _advice(errors.ProtocolError(
            f"answer {str(answer)[:80]!r} is not the import protocol"), target))
    return CheckResult(True, f"ok: {target.url} accepts user {target.user!r}; version 1 only "
                       "(no capabilities)")
