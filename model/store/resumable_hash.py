"""MD5 and SHA-256 whose running state can be saved as bytes and taken up again in another
process, on another host.

A resumable upload on an object store is written through whichever importer host takes each
chunk, so the whole file's digests must travel with the upload's ledger in the database:
hashing the parts again at the end would read the whole file back. hashlib's states cannot be
saved, and the PyPI packages that could (rehash) do not support OpenSSL 3. OpenSSL's own
one-shot functions (MD5_Init/Update/Final, SHA256_…) still work on plain public structures,
MD5_CTX and SHA256_CTX, whose bytes are the whole state; they are called here through
ctypes, which lets go of the GIL during each call, so hashing runs as fast as hashlib's and
beside other threads. The saved state is as portable as those structures (every OpenSSL build
of the same word size has the same layout); it names its algorithm and is checked on load.
"""

import ctypes
import ctypes.util
from dataclasses import dataclass

_crypto = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")


@dataclass(frozen=True)
class _Algorithm:
    name: str
    context_size: int        # sizeof(MD5_CTX) / sizeof(SHA256_CTX)
    digest_size: int
    prefix: str              # of the OpenSSL function names

    def function(self, step: str):
        found = getattr(_crypto, f"{self.prefix}_{step}")
        found.restype = ctypes.c_int
        return found


_MD5 = _Algorithm("md5", 92, 16, "MD5")
_SHA256 = _Algorithm("sha256", 112, 32, "SHA256")


class StateError(ValueError):
    """Saved hash state of another algorithm, or damaged."""


class ResumableHash:
    """hashlib's interface (update, digest, hexdigest, copy) plus `state()`."""

    def __init__(self, algorithm: _Algorithm, state: bytes | None = None):
        self._algorithm = algorithm
        self._update = algorithm.function("Update")
        self._update.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
        self._context = ctypes.create_string_buffer(algorithm.context_size)
        if state is None:
            algorithm.function("Init")(self._context)
        else:
            name, _, raw = state.partition(b":")
            if name.decode(errors="replace") != algorithm.name \
                    or len(raw) != algorithm.context_size:
                raise StateError(f"not a saved {algorithm.name} state")
            ctypes.memmove(self._context, raw, algorithm.context_size)

    @property
    def name(self) -> str:
        return self._algorithm.name

    def update(self, data) -> None:
        view = memoryview(data).cast("B")
        if not view.nbytes:
            return
        if view.readonly:
            buffer = ctypes.c_char_p(view.tobytes() if not isinstance(data, bytes) else data)
        else:
            buffer = (ctypes.c_char * view.nbytes).from_buffer(view)
        self._update(self._context, buffer, view.nbytes)

    def state(self) -> bytes:
        """The running state: `ResumableHash` of the same algorithm continues from it."""
        return self._algorithm.name.encode() + b":" + self._context.raw

    def copy(self) -> "ResumableHash":
        return ResumableHash(self._algorithm, self.state())

    def digest(self) -> bytes:
        final = self._algorithm.function("Final")
        out = ctypes.create_string_buffer(self._algorithm.digest_size)
        final(out, ctypes.create_string_buffer(self._context.raw, len(self._context)))
        return out.raw

    def hexdigest(self) -> str:
        return self.digest().hex()


def md5(state: bytes | None = None) -> ResumableHash:
    return ResumableHash(_MD5, state)


def sha256(state: bytes | None = None) -> ResumableHash:
    return ResumableHash(_SHA256, state)
