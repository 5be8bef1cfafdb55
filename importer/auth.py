"""HTTP Basic authentication against the site's users, and role checks per route.

scrypt makes a password check deliberately slow, so a verified (name, password) pair is
remembered for `importer.auth_cache_s` seconds, keyed by a SHA-256 of both, never by the
password itself. Requests that arrive together with the same pair (an exporter's lanes
start at once) wait for one check instead of each making its own.
"""

import hashlib
import threading
from functools import wraps

from cachetools import TTLCache
from flask import g, request

from importer.errors import ApiError
from model.ops.users import User, Users


# Checks of the same pair take turns behind one of these locks (picked by the pair's hash;
# two pairs sharing a lock only wait for each other's check, rarely).
CHECK_LOCKS = 64


class CredentialCache:
    def __init__(self, users: Users, ttl_s: float, size: int = 1024):
        self._users = users
        self._cache = TTLCache(maxsize=size, ttl=ttl_s) if ttl_s > 0 else None
        self._lock = threading.Lock()
        self._checking = [threading.Lock() for _ in range(CHECK_LOCKS)]

    def authenticate(self, name: str, password: str) -> User | None:
        if self._cache is None:
            return self._users.authenticate(name, password)
        key = hashlib.sha256(f"{name}\0{password}".encode()).digest()
        user = self._remembered(key)
        if user is not None:
            return user
        with self._checking[key[0] % CHECK_LOCKS]:
            user = self._remembered(key)       # checked meanwhile by the request before us
            if user is None:
                user = self._users.authenticate(name, password)
                if user is not None:
                    with self._lock:
                        self._cache[key] = user
        return user

    def _remembered(self, key: bytes) -> User | None:
        with self._lock:
            return self._cache.get(key)


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Basic realm="skyrelay"'})


def authenticate(credentials: CredentialCache, role: str) -> User:
    """The request's user, who must hold `role`: else 401 (who are you?) or 403 (not you)."""
    user = authenticate_any(credentials)
    if role not in user.roles:
        raise ApiError(403, f"user {user.name!r} lacks the role {role!r}")
    return user


def require_role(role: str):
    """Route decorator: authenticate, check `role`, make the user `g.user`."""
    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            from importer.state import current     # (the state module imports this one)
            authenticate(current().credentials, role)
            return view(*args, **kwargs)
        return wrapper
    return decorate


def authenticate_any(credentials: CredentialCache) -> User:
    """The request's user, whatever their roles (401 if none): for routes that decide
    themselves what a user may see, such as a job only its poster or an admin may read."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username:
        raise _unauthorized("authentication required (HTTP Basic)")
    user = credentials.authenticate(auth.username, auth.password or "")
    if user is None:
        raise _unauthorized("wrong user name or password")
    g.user = user
    return user
