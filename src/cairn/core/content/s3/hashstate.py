"""SHA-256/512 hashers whose running state can be saved and restored in another process.

An S3 ingest is a multipart upload, and the parts already uploaded cannot be
read back until the upload is completed. When a replica dies mid-ingest and
another one continues it, the new replica therefore cannot re-hash what was
stored; it needs the hash state as of the last part. hashlib cannot export its
state (OpenSSL 3 hides it; the ``rehash`` package that once could supports only
OpenSSL 1.x), and no maintained PyPI library offers resumable SHA-2 at native
speed, so this module calls the same libcrypto that hashlib uses, through its
``SHA256_*``/``SHA512_*`` functions, whose context is a plain struct: its bytes
*are* the state. Speed is hashlib's (the same assembly; ctypes releases the GIL
during each call).

A saved state is tagged with the algorithm and the struct size, so a state from
an incompatible build is refused (:class:`StateError`) rather than misread.
These functions are deprecated in OpenSSL 3 but exported; if they ever go, the
S3 backend refuses to start with a clear message instead of losing resumability.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from typing import Any, Self

from cairn.core.digest import Digest
from cairn.core.errors import FailedPreconditionError

__all__ = ["ResumableHasher", "StateError", "available"]

_MAGIC = b"cairn-hs1:"


class StateError(FailedPreconditionError):
    """A saved hash state this build cannot restore."""


@dataclass(frozen=True)
class _Algorithm:
    name: str
    ctx_size: int
    digest_size: int
    init: Any  # ctypes foreign functions
    update: Any
    final: Any


def _load() -> dict[str, _Algorithm]:
    name = ctypes.util.find_library("crypto") or "libcrypto.so.3"
    try:
        lib = ctypes.CDLL(name)
        functions = {
            "sha256": (112, 32, lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final),
            "sha512": (216, 64, lib.SHA512_Init, lib.SHA512_Update, lib.SHA512_Final),
        }
    except (OSError, AttributeError):
        return {}
    algorithms = {}
    for algorithm, (ctx_size, digest_size, init, update, final) in functions.items():
        init.argtypes = [ctypes.c_void_p]
        update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        final.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        for function in (init, update, final):
            function.restype = ctypes.c_int
        algorithms[algorithm] = _Algorithm(algorithm, ctx_size, digest_size, init, update, final)
    return algorithms


_ALGORITHMS = _load()


def available() -> bool:
    """Whether libcrypto's resumable hashes could be loaded."""
    return bool(_ALGORITHMS)


class ResumableHasher:
    """A streaming SHA-2 hasher with :meth:`state`/:meth:`restore`. Not thread-safe."""

    def __init__(self, algorithm: str = "sha256") -> None:
        spec = _ALGORITHMS.get(algorithm)
        if spec is None:
            raise FailedPreconditionError(
                f"resumable {algorithm} hashing is not available (needs OpenSSL libcrypto's {algorithm.upper()}_*)"
            )
        self._spec = spec
        self._ctx = ctypes.create_string_buffer(spec.ctx_size)
        spec.init(self._ctx)

    @property
    def name(self) -> str:
        return self._spec.name

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if isinstance(data, bytes):
            self._spec.update(self._ctx, data, len(data))
            return
        view = memoryview(data).cast("B")
        if view.readonly:  # a view into bytes: no writable buffer to point at
            copy = view.tobytes()
            self._spec.update(self._ctx, copy, len(copy))
            return
        self._spec.update(self._ctx, (ctypes.c_char * len(view)).from_buffer(view), len(view))

    def copy(self) -> Self:
        other = type(self).__new__(type(self))
        other._spec = self._spec
        other._ctx = ctypes.create_string_buffer(self._ctx.raw, self._spec.ctx_size)
        return other

    def digest(self) -> Digest:
        """The digest of everything hashed so far (the hasher stays usable)."""
        ctx = ctypes.create_string_buffer(self._ctx.raw, self._spec.ctx_size)
        out = ctypes.create_string_buffer(self._spec.digest_size)
        self._spec.final(out, ctx)
        return Digest(self._spec.name, out.raw.hex())

    def state(self) -> bytes:
        """The running state, to :meth:`restore` in this or another process."""
        return _MAGIC + self._spec.name.encode() + b":" + self._ctx.raw

    @classmethod
    def restore(cls, state: bytes) -> Self:
        """A hasher continuing from :meth:`state`; StateError if it does not fit this build."""
        if not state.startswith(_MAGIC):
            raise StateError("saved hash state has an unknown format")
        name, _, raw = state[len(_MAGIC) :].partition(b":")
        hasher = cls(name.decode("ascii", "replace"))
        if len(raw) != hasher._spec.ctx_size:
            raise StateError(f"saved {hasher.name} state has {len(raw)} bytes, this build expects {hasher._spec.ctx_size}")
        ctypes.memmove(hasher._ctx, raw, len(raw))
        return hasher
