"""Users of a site and their roles. Only scrypt hashes of passwords are stored."""

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from model.protocol.errors import Conflict, Invalid, NotFound
from model.store import schema
from model.store.database import Database, now_ms

ROLES = ("user", "import", "camera_admin")
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
# scrypt cost: slow on purpose (every guess costs an attacker as much); verified passwords
# are cached briefly by the importer so that a sync does not pay it on every request.
_N, _R, _P = 2 ** 14, 8, 1


class UserError(Invalid):
    """A user command cannot be done; the message says why."""


class UserExists(UserError, Conflict):
    """The name is taken."""


class NoSuchUser(UserError, NotFound):
    """No user has that name."""


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset[str]


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    encode = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${_N}${_R}${_P}${encode(salt)}${encode(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                                r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


def check_roles(roles) -> frozenset[str]:
    roles = frozenset(roles)
    unknown = roles - set(ROLES)
    if unknown or not roles:
        raise UserError(f"roles must be among {', '.join(ROLES)}; got "
                        f"{', '.join(sorted(roles)) or 'none'}")
    return roles


class Users:
    def __init__(self, database: Database):
        self.db = database

    def add(self, name: str, password: str, roles) -> User:
        if not _NAME.fullmatch(name):
            raise UserError(f"user name {name!r}: use 1 to 64 letters, digits or '_.@-'")
        if len(password) < 8:
            raise UserError("password: at least 8 characters")
        roles = check_roles(roles)
        password_hash = hash_password(password)  # slow on purpose: not inside the transaction
        taken = UserExists(f"user {name!r} exists already; remove it first or pick another name")
        try:
            with self.db.transaction() as tx:
                if tx.scalar(select(schema.users.c.name).where(schema.users.c.name == name)):
                    raise taken
                tx.execute(insert(schema.users).values(
                    name=name, password_hash=password_hash, roles=" ".join(sorted(roles)),
                    created_ms=now_ms()))
        except IntegrityError:  # added by a concurrent request after our check
            raise taken from None
        return User(name, roles)

    def set_roles(self, name: str, roles) -> User:
        roles = check_roles(roles)
        with self.db.transaction() as tx:
            if not tx.execute(update(schema.users).where(schema.users.c.name == name)
                              .values(roles=" ".join(sorted(roles)))).rowcount:
                raise NoSuchUser(f"no user {name!r}")
        return User(name, roles)

    def remove(self, name: str) -> None:
        with self.db.transaction() as tx:
            if not tx.execute(delete(schema.users).where(schema.users.c.name == name)).rowcount:
                raise NoSuchUser(f"no user {name!r} (see `skyrelay user list`)")

    def list(self) -> list[User]:
        with self.db.reading() as conn:
            rows = conn.execute(select(schema.users.c.name, schema.users.c.roles)
                                .order_by(schema.users.c.name))
            return [User(row.name, frozenset(row.roles.split())) for row in rows]

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is right, else None (same answer for an unknown name)."""
        if not _NAME.fullmatch(name):   # no user's name: not looked up (PostgreSQL refuses NUL)
            return None
        with self.db.reading() as conn:
            row = conn.execute(select(schema.users).where(schema.users.c.name == name)).first()
        if row is None or not verify_password(password, row.password_hash):
            return None
        return User(row.name, frozenset(row.roles.split()))
