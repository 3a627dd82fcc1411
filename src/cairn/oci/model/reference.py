"""Image references (``host[:port]/repo[:tag][@digest]``) and repository and tag names.

:meth:`Reference.parse` follows the distribution/reference grammar with the
Docker normalisation every client applies: no registry means ``docker.io``,
``index.docker.io`` is ``docker.io``, and a one-component repository on
``docker.io`` lives under ``library/``. A first path component is a registry if
it contains ``.`` or ``:`` or is ``localhost``. IPv6 literal hosts are not
supported. :func:`validate_repository` and :func:`validate_tag` check the names a
registry receives in ``/v2/<name>/...`` URLs.

This module is not for resolving references (no network, no catalog lookups).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cairn.core.digest import Digest
from cairn.core.errors import InvalidArgumentError

__all__ = ["DOCKER_HUB", "NAME_TOTAL_LENGTH_MAX", "Reference", "validate_repository", "validate_tag"]

#: The canonical name of Docker Hub in normalised references.
DOCKER_HUB = "docker.io"
#: distribution's limit on ``registry/repository``.
NAME_TOTAL_LENGTH_MAX = 255

_LEGACY_HUB = "index.docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?")
_HEX64 = re.compile(r"[a-f0-9]{64}")


def validate_repository(name: str) -> str:
    """Return ``name`` if it is a valid repository path, else raise :class:`InvalidArgumentError`.

    The path has no registry part: lowercase components joined by ``/``, at most
    255 characters in all.
    """
    if not isinstance(name, str) or not _REPOSITORY.fullmatch(name):
        raise InvalidArgumentError(f"repository name {name!r}: invalid format")
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgumentError(
            f"repository name {name[:32]!r}...: longer than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    return name


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid tag (``[\\w][\\w.-]{0,127}``), else raise InvalidArgumentError."""
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise InvalidArgumentError(f"tag {tag!r}: invalid format")
    return tag


def _looks_like_registry(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised image reference; construction validates and normalises.

    ``tag`` and ``digest`` may both be set (``repo:tag@digest``; the digest wins
    when pulling) or both be absent (see :meth:`tag_or_latest`).
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    def __post_init__(self) -> None:
        registry = self.registry
        if not isinstance(registry, str) or not _REGISTRY.fullmatch(registry):
            raise InvalidArgumentError(f"reference: registry {registry!r}: invalid format")
        if registry == _LEGACY_HUB:
            registry = DOCKER_HUB
        repository = validate_repository(self.repository)
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        if len(registry) + 1 + len(repository) > NAME_TOTAL_LENGTH_MAX:
            raise InvalidArgumentError(
                f"reference {registry}/{repository[:32]}...: name longer than {NAME_TOTAL_LENGTH_MAX}"
            )
        if self.tag is not None:
            validate_tag(self.tag)
        if self.digest is not None and not isinstance(self.digest, Digest):
            raise InvalidArgumentError("reference: digest must be a Digest")
        object.__setattr__(self, "registry", registry)
        object.__setattr__(self, "repository", repository)

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse and normalise ``[host[:port]/]repo[:tag][@digest]``.

        Raises only :class:`InvalidArgumentError`, naming the part that is wrong.
        """
        if not isinstance(text, str) or not text:
            raise InvalidArgumentError(f"reference {text!r}: empty or not a string")
        name, at, digest_text = text.partition("@")
        digest: Digest | None = None
        if at:
            try:
                digest = Digest.parse(digest_text)
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(f"reference {text!r}: {exc.message}") from exc
        tag: str | None = None
        slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > slash:
            name, tag = name[:colon], name[colon + 1 :]
            if not _TAG.fullmatch(tag):
                raise InvalidArgumentError(f"reference {text!r}: tag {tag!r}: invalid format")
        first, sep, rest = name.partition("/")
        if sep and _looks_like_registry(first):
            registry, path = first, rest
        else:
            registry, path = DOCKER_HUB, name
            if _HEX64.fullmatch(path):
                raise InvalidArgumentError(
                    f"reference {text!r}: a 64-character hex string is an image id, not a name"
                )
        if not _REPOSITORY.fullmatch(path):
            raise InvalidArgumentError(f"reference {text!r}: repository {path!r}: invalid format")
        try:
            return cls(registry, path, tag, digest)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"reference {text!r}: {exc.message}") from exc

    @property
    def name(self) -> str:
        """``registry/repository``, the fully qualified name."""
        return f"{self.registry}/{self.repository}"

    def tag_or_latest(self) -> str:
        """The tag, or ``latest`` when the reference has none (even if it has a digest)."""
        return self.tag if self.tag is not None else "latest"

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return tag + digest

    def __str__(self) -> str:
        """The full normalised form, ``docker.io/library/alpine:3``."""
        return self.name + self._suffix()

    def familiar(self) -> str:
        """The short Docker form (``alpine:3``, ``user/app``); other registries stay in full.

        The ``docker.io/`` prefix is kept when the path's first component would
        read as a registry, so ``Reference.parse(r.familiar()) == r`` always holds.
        """
        if self.registry != DOCKER_HUB:
            return str(self)
        path = self.repository
        if path.startswith("library/") and path.count("/") == 1:
            path = path.removeprefix("library/")
        elif _looks_like_registry(path.split("/", 1)[0]):
            return str(self)
        return path + self._suffix()
