"""`target check`: can this site reach the target, log in, and what does the importer speak?

Two requests, neither of which changes anything on any importer: `GET {base}/capabilities`
(version 2 importers answer it), and when that is 404 a version 1 probe, `POST {base}` with
`{"type": "skyrelay-check"}`, a type no importer knows. Both importers check the credentials
first (401/403: a failure, as at capabilities). Then a skyrelay importer refuses the type,
400 with the JSON `failed` shape, and stores nothing; MeteorPi's 2015 importer cannot read
it and answers 500, also storing nothing. (The earlier probe, a `cached_entity` for a random
ID, made that importer keep a broken cache entry and answer 500 too.)

So after the credentials, an answer of the importer's own code that is an error (a 5xx that
`exporter.retry.may_be_the_entitys` would put on an entity: 500, 501 …) still means "reachable,
credentials accepted": the check is ok, with a warning that names the answer. 404/405 is no
importer; a 502/503/504 or 429 says nothing about the credentials and fails the check, as
any error at capabilities does (MeteorPi's importer answers 404 there, before any login).
"""

import json
from dataclasses import dataclass

from exporter import errors
from exporter.retry import may_be_the_entitys
from exporter.transport import Transport, check_response
from model.export.targets import Target
from model.ops.traces import new_trace_id
from model.protocol.vocabulary import FAILED, state_of

# A request form no importer knows: refused (skyrelay) or a crash (MeteorPi), never stored.
PROBE = {"type": "skyrelay-check"}


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str
    capabilities: dict | None = None
    warning: str | None = None      # ok, but something the admin should know


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
        except errors.ExportError as exc:
            return CheckResult(False, _advice(exc, target))
        if capabilities is not None:
            versions = ", ".join(str(v) for v in capabilities.get("protocol", []))
            return CheckResult(True, f"ok: {target.url} speaks protocol versions {versions}",
                               capabilities)
        try:
            answer = _probe(transport)
        except errors.ExportError as exc:
            if not may_be_the_entitys(exc):
                return CheckResult(False, _advice(exc, target))
            return CheckResult(True, _version_1_only(target), warning=(
                f"credentials accepted, but the importer answered {exc.status} to the probe: "
                f"{exc} (MeteorPi's 2015 importer answers 500 to a request it cannot read; "
                "if this is not one, see the importer's log)"))
    if state_of(answer) is None:
        return CheckResult(False, _advice(errors.ProtocolError(
            f"answer {str(answer)[:80]!r} is not the import protocol"), target))
    return CheckResult(True, _version_1_only(target))


def _probe(transport: Transport):
    """The importer's JSON answer to `PROBE`. Its refusal (400) is the answer expected of a
    skyrelay importer, so it is read as an answer; every other status as in a sync."""
    response = transport.send("POST", transport.base_url, data=json.dumps(PROBE).encode(),
                              headers={"Content-Type": "application/json"})
    if response.status_code == 400:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if state_of(answer) == FAILED:
            return answer
    return check_response(response)


def _version_1_only(target: Target) -> str:
    return (f"ok: {target.url} accepts user {target.user!r}; version 1 only "
            "(no capabilities)")
