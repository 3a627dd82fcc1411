"""The publisher's signing key: one P-256 private key in a file only its owner can read.

Whoever reads the file can publish as its owner, so the file is created with
mode 0600 (in a 0700 directory when the directory is new), never overwritten by
accident, and refused when its mode lets others read it (as ssh does with
private keys): a key that leaked is not made worse by being used silently.

The file holds the key's text form (``ecdsa-p256:<base64 scalar>``) and a
newline, the same form the reference tooling prints.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cairn.core.errors import AlreadyExistsError, CairnError, NotFoundError, PermissionDeniedError
from cairn.warg.crypto import PrivateKey

__all__ = ["create_key", "default_key_file", "load_key"]


def default_key_file() -> Path:
    """``$XDG_CONFIG_HOME/cairn/warg/signing.key`` (``~/.config/...`` when the variable is unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cairn" / "warg" / "signing.key"


def create_key(path: Path, *, force: bool = False) -> PrivateKey:
    """Generate a key and write it to ``path`` (mode 0600); AlreadyExistsError unless ``force``."""
    if path.exists() and not force:
        raise AlreadyExistsError(
            f"key file {path} exists already; not overwriting a key (--force replaces it)"
        )
    key = PrivateKey.generate()
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as file:
                file.write(f"{key}\n")
                file.flush()
                os.fsync(file.fileno())
            if force:
                os.replace(temp, path)
            else:
                os.link(temp, path)  # fails if someone created the key meanwhile
        finally:
            temp.unlink(missing_ok=True)
    except FileExistsError:
        raise AlreadyExistsError(f"key file {path} exists already; not overwriting a key") from None
    except OSError as exc:
        raise CairnError(f"cannot write key file {path}: {exc.strerror or exc}") from None
    return key


def load_key(path: Path) -> PrivateKey:
    """The key in ``path``; refused when the file is readable or writable by group or others."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise NotFoundError(f"no signing key at {path}; create one with `cairn warg key new`") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII text"
        raise CairnError(f"cannot read key file {path}: {reason or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionDeniedError(
            f"key file {path} is accessible by others (mode {stat.S_IMODE(mode):04o}); `chmod 600 {path}`"
        )
    try:
        return PrivateKey.parse(text.strip())
    except CairnError:
        # not the parser's message: it quotes the text, which is (nearly) a secret
        raise CairnError(
            f"key file {path} does not hold a Warg private key (expected `ecdsa-p256:<base64>`)"
        ) from None
