"""`/api/users` (role camera_admin): list, add and remove the users of this site, and change
their roles. Passwords go in only; what comes out is names and roles. A `UserError` is answered
by its kind (400, 404 for an unknown user, 409 for a taken name; `importer.errors`)."""

from flask import Blueprint, jsonify

from importer.auth import require_role
from importer.errors import bad_request
from importer.request_body import read_object
from importer.state import current


def blueprint() -> Blueprint:
    bp = Blueprint("users_api", __name__, url_prefix="/api/users")
    bp.add_url_rule("", "list", list_users, methods=["GET"])
    bp.add_url_rule("", "add", add_user, methods=["POST"])
    bp.add_url_rule("/<name>", "roles", set_roles, methods=["PUT"])
    bp.add_url_rule("/<name>", "remove", remove_user, methods=["DELETE"])
    return bp


def _users():
    return current().site.users


def _as_json(user) -> dict:
    return {"name": user.name, "roles": sorted(user.roles)}


def _body() -> dict:
    return read_object(current().settings["importer.max_body_bytes"])


def _text(body: dict, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise bad_request(f"{key}: expected a string")
    return value


def _roles(body: dict) -> list[str]:
    roles = body.get("roles")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise bad_request("roles: expected a list of role names")
    return roles


@require_role("camera_admin")
def list_users():
    return jsonify({"users": [_as_json(user) for user in _users().list()]})


@require_role("camera_admin")
def add_user():
    body = _body()
    name, password, roles = _text(body, "name"), _text(body, "password"), _roles(body)
    return jsonify(_as_json(_users().add(name, password, roles))), 201


@require_role("camera_admin")
def set_roles(name: str):
    roles = _roles(_body())
    return jsonify(_as_json(_users().set_roles(name, roles)))


@require_role("camera_admin")
def remove_user(name: str):
    _users().remove(name)
    return jsonify({"state": "removed", "name": name})
