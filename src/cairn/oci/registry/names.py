"""The registry's grammar checks, raising the OCI-specific error kinds.

The model (:mod:`cairn.oci.model`) raises plain InvalidArgumentError; the
registry needs to say *which* OCI error a bad name is (NAME_INVALID,
TAG_INVALID, DIGEST_INVALID), so it re-raises here.
"""

from __future__ import annotations

from cairn.core.digest import Digest
from cairn.core.errors import InvalidArgumentError
from cairn.oci.errors import DigestInvalidError, NameInvalidError, TagInvalidError
from cairn.oci.model import validate_repository, validate_tag

__all__ = ["check_repository", "check_tag", "is_digest", "parse_digest"]


def check_repository(name: str) -> str:
    try:
        return validate_repository(name)
    except InvalidArgumentError as exc:
        raise NameInvalidError(exc.message, {"Name": name}) from None


def check_tag(tag: str) -> str:
    try:
        return validate_tag(tag)
    except InvalidArgumentError as exc:
        raise TagInvalidError(exc.message, {"Tag": tag}) from None


def parse_digest(text: str) -> Digest:
    """A supported digest (sha256, sha512), else DigestInvalidError (400, never 500)."""
    try:
        return Digest.parse(text)
    except InvalidArgumentError as exc:
        raise DigestInvalidError(exc.message, {"Digest": text}) from None


def is_digest(reference: str) -> bool:
    """A manifest reference is a digest when it contains ``:`` (distribution-spec section 1)."""
    return ":" in reference
