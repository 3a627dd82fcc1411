"""The operator key: signs the operator log's records and every checkpoint.

Created on first start in the data directory (mode 0600, written to a
temporary name and renamed, so a crash never leaves half a key) unless the
user configures one. Losing it means no new checkpoints can be signed that
clients of this registry accept, so the file is never rewritten once it exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from cairn.core.errors import FailedPreconditionError
from cairn.warg.crypto import PrivateKey
from cairn.warg.errors import WargFormatError

__all__ = ["load_operator_key"]


def load_operator_key(path: Path, *, create: bool) -> PrivateKey:
    """The key in ``path``; a new one written there first if it is missing and ``create`` is set."""
    if not path.exists():
        if not create:
            raise FailedPreconditionError(f"operator key file {path} does not exist")
        key = PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, f"{key}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        return key
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise FailedPreconditionError(
            f"operator key file {path} is readable by others (mode {mode:o}); chmod 600 it"
        )
    try:
        return PrivateKey.parse(path.read_text().strip())
    except WargFormatError as exc:
        raise FailedPreconditionError(f"operator key file {path}: {exc.message}") from None
