"""Image references the Docker way: parse with Docker's error texts, show in familiar form.

``cairn.oci.model.Reference`` does the grammar and normalisation; this module
adds what the image service's users see: Docker's messages for bad input
("invalid reference format: repository name must be lowercase") and the
familiar strings of RepoTags and RepoDigests (``busybox:latest``,
``busybox@sha256:...``).
"""

from __future__ import annotations

from cairn.core.errors import InvalidArgumentError
from cairn.oci.model import Reference

__all__ = ["familiar_name", "parse_reference", "repo_digest", "repo_tag"]


def parse_reference(text: str) -> Reference:
    """Parse and normalise; InvalidArgumentError with Docker's wording on bad input.

    As distribution's ``reference.Parse``: when the text does not parse but its
    lower-case form does, the fault is upper case in the name.
    """
    try:
        return Reference.parse(text)
    except InvalidArgumentError:
        if text != text.lower() and _parses(text.lower()):
            raise InvalidArgumentError(
                f"invalid reference format: repository name must be lowercase: {text!r}"
            ) from None
        raise InvalidArgumentError(f"invalid reference format: {text!r}") from None


def _parses(text: str) -> bool:
    try:
        Reference.parse(text)
    except InvalidArgumentError:
        return False
    return True


def familiar_name(ref: Reference) -> str:
    """``busybox``, ``user/app`` or ``localhost:5000/app``: the repository as Docker shows it."""
    return Reference(ref.registry, ref.repository).familiar()


def repo_tag(ref: Reference) -> str:
    """``busybox:latest``: a RepoTags entry."""
    return f"{familiar_name(ref)}:{ref.tag_or_latest()}"


def repo_digest(ref: Reference) -> str:
    """``busybox@sha256:...``: a RepoDigests entry (the reference must have a digest)."""
    return f"{familiar_name(ref)}@{ref.digest}"
