"""`/api/targets`: the export targets of this site over HTTP, for role camera_admin.

The same operations and validation as `skyrelay target …` (both call `model.export.targets`); the
password can be set but is never returned; a `TargetError` is answered by its kind (400, 404 for
an unknown target, 409 for a taken name; `importer.errors`). This module imports from `model`
only: the importer and the exporter never import each other.
"""

from flask import Blueprint, jsonify

from importer.auth import require_role
from importer.errors import bad_request
from importer.request_body import read_object
from importer.state import current
from model.export.queue import DONE, FAILED, PENDING, ExportQueue
from model.export.targets import Targets, make_filter

_CREATE_KEYS = {"name", "url", "user", "password", "protocol", "filter", "ca_bundle",
                "bwlimit"}
_FILTER_KEYS = {"camera_ids", "event_types", "after", "before"}
_CHANGE_KEYS = {"url", "user", "password", "protocol", "ca_bundle", "enabled", "bwlimit"}


def _stores() -> tuple[Targets, ExportQueue]:
    site = current().site
    return site.targets, site.queue


def _body(allowed: set[str]) -> dict:
    """The body, read like every JSON body (`request_body`: within the size limit; anything
    that is not a JSON object, however deeply nested, is a 400), with known keys only."""
    body = read_object(current().settings["importer.max_body_bytes"])
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"unknown key {unknown[0]!r}; known: {', '.join(sorted(allowed))}")
    return body


def _view(target, queue: ExportQueue) -> dict:
    counts = queue.counts(target.target_id)
    return {**target.to_json(), "backlog": {k: counts[k] for k in (PENDING, FAILED, DONE)}}


def _filter(body: dict):
    given = body.get("filter") or {}
    if not isinstance(given, dict):
        raise bad_request("filter: expected an object with camera_ids, event_types, after, "
                          "before")
    unknown = sorted(set(given) - _FILTER_KEYS)
    if unknown:
        raise bad_request(f"filter: unknown key {unknown[0]!r}")
    for key in ("camera_ids", "event_types"):
        if not isinstance(given.get(key, []), list):
            raise bad_request(f"filter.{key}: expected a list")
    return make_filter(given.get("camera_ids", ()), given.get("event_types", ()),
                       given.get("after"), given.get("before"))


def blueprint() -> Blueprint:
    bp = Blueprint("targets_api", __name__, url_prefix="/api/targets")
    bp.add_url_rule("", "list", list_targets, methods=["GET"])
    bp.add_url_rule("", "add", add_target, methods=["POST"])
    bp.add_url_rule("/<name>", "show", show_target, methods=["GET"])
    bp.add_url_rule("/<name>", "change", change_target, methods=["PATCH"])
    bp.add_url_rule("/<name>", "remove", remove_target, methods=["DELETE"])
    return bp


@require_role("camera_admin")
def list_targets():
    targets, queue = _stores()
    return jsonify({"targets": [_view(t, queue) for t in targets.list()]})


@require_role("camera_admin")
def add_target():
    body = _body(_CREATE_KEYS)
    targets, queue = _stores()
    selection = _filter(body)
    added = targets.add(body.get("name"), body.get("url"), body.get("user"),
                        body.get("password"), body.get("protocol", "auto"), selection,
                        body.get("ca_bundle"), body.get("bwlimit"))
    queue.enqueue_new(added)
    return jsonify(_view(added, queue)), 201


@require_role("camera_admin")
def show_target(name):
    targets, queue = _stores()
    return jsonify(_view(targets.get(name), queue))


@require_role("camera_admin")
def change_target(name):
    body = _body(_CHANGE_KEYS)
    if "enabled" in body and not isinstance(body["enabled"], bool):
        raise bad_request("enabled: expected true or false")
    targets, queue = _stores()
    return jsonify(_view(targets.change(name, **body), queue))


@require_role("camera_admin")
def remove_target(name):
    targets, _ = _stores()
    targets.remove(name)
    return jsonify({"state": "removed", "name": name})
