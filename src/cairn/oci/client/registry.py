"""A client of one OCI Distribution registry: the ``/v2/`` endpoints as typed, blocking calls.

:class:`RegistryClient` is what the image service's pull and push and the
``cairn`` registry commands stand on: one method per endpoint (distribution-spec
section 3), values in (:class:`~cairn.core.digest.Digest`, repository names
validated before any request) and values out (:class:`FetchedManifest`,
:class:`~cairn.oci.model.Descriptor`), failures in cairn's error vocabulary.
Everything that comes over the wire with a digest is checked against it:
manifests always, blobs when read whole, so a caller never holds unverified
bytes without knowing it.

It is not a pull or push engine: no walking of manifests, no parallelism, no
retries beyond urllib3's connection retries and one re-authentication, and
it does not parse manifests it fetches (``parse_manifest`` does that).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import urllib3

from cairn.core.digest import Digest
from cairn.core.errors import (
    CairnError,
    DataLossError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    UnavailableError,
    UnimplementedError,
)
from cairn.oci.client.blobs import BlobReader
from cairn.oci.client.links import next_link
from cairn.oci.client.transport import ByteSource, Transport
from cairn.oci.model import Descriptor, ImageIndex, mediatypes, parse_manifest
from cairn.oci.model.reference import validate_repository, validate_tag

__all__ = [
    "ALL_MANIFEST_TYPES",
    "MAX_MANIFEST_BYTES",
    "FetchedManifest",
    "RegistryClient",
]

log = logging.getLogger(__name__)

#: What ``get_manifest`` accepts by default: every manifest and index type in use (spec 4.3).
ALL_MANIFEST_TYPES: tuple[str, ...] = (
    mediatypes.OCI_MANIFEST,
    mediatypes.OCI_INDEX,
    mediatypes.DOCKER_MANIFEST,
    mediatypes.DOCKER_MANIFEST_LIST,
    mediatypes.DOCKER_SCHEMA1_SIGNED_MANIFEST,
    mediatypes.DOCKER_SCHEMA1_MANIFEST,
)
#: Manifests larger than this are refused unread (registries must accept at least 4 MiB).
MAX_MANIFEST_BYTES = 16 << 20
#: A paginated listing stops with an error after this many pages (a registry that never ends).
_MAX_PAGES = 100_000
_CATALOG_SCOPE = "registry:catalog:*"
#: Well-known registry names whose API lives elsewhere.
_API_HOSTS = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}


def _pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def _push(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def _delete(repository: str) -> str:
    return f"repository:{repository}:delete"


def _malformed(what: str, registry: str, reason: str) -> UnavailableError:
    return UnavailableError(f"{what}: {registry} answered a malformed document ({reason})")


def _with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` appended to its existing query (upload locations carry state)."""
    parts = urlsplit(url)
    extra = urlencode(params)
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


def _header_digest(response: urllib3.BaseHTTPResponse) -> Digest | None:
    """``Docker-Content-Digest``, or None when absent or in an algorithm cairn does not know."""
    value = response.headers.get("Docker-Content-Digest")
    if not value:
        return None
    try:
        return Digest.parse(value.strip())
    except InvalidArgumentError:
        return None


def _media_type(response: urllib3.BaseHTTPResponse) -> str | None:
    value = response.headers.get("Content-Type")
    return value.split(";", 1)[0].strip() if value else None


def _referrers_tag(digest: Digest) -> str:
    """The referrers tag schema's tag for ``digest`` (spec 4.7): ``<alg>-<hex>``, truncated."""
    return f"{digest.algorithm[:32]}-{digest.hex[:64]}"


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    """A manifest as the registry served it: its exact bytes, verified digest and media type."""

    media_type: str
    digest: Digest
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))


class RegistryClient:
    """Blocking calls to one registry's ``/v2/`` API; a context manager, ``close()`` idempotent.

    ``host`` is ``host[:port]`` (plain http for loopback hosts or with
    ``insecure``, else https) or a URL whose scheme wins. ``username``/``password``
    answer Basic challenges and authenticate at Bearer token services;
    ``registry_token`` is sent as a Bearer token as it is, and ``identity_token``
    is exchanged for tokens as an OAuth2 refresh token.
    ``timeout`` bounds connecting and each wait for bytes, not a whole transfer.

    Every method validates repository names, tags and digests first
    (InvalidArgumentError, no request sent) and may raise UnavailableError
    (unreachable, timeout, 5xx, a malformed answer), UnauthenticatedError,
    PermissionDeniedError, and the kinds named in its docstring. Thread-safe.
    """

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        username: str | None = None,
        password: str | None = None,
        registry_token: str | None = None,
        identity_token: str | None = None,
        timeout: float = 30,
    ) -> None:
        host = _API_HOSTS.get(host, host)
        self._transport = Transport(
            host,
            insecure=insecure,
            username=username,
            password=password,
            registry_token=registry_token,
            identity_token=identity_token,
            timeout=timeout,
        )
        #: ``host[:port]`` as requests address it.
        self.registry = self._transport.netloc
        #: ``scheme://host[:port]``.
        self.base_url = self._transport.base_url

    # -- lifetime ----------------------------------------------------------------
    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------
    def _path(self, repository: str, *parts: str) -> str:
        return self._transport.url("/".join(("/v2", validate_repository(repository), *parts)))

    @staticmethod
    def _reference(reference: str | Digest) -> tuple[str, Digest | None]:
        """The URL form of a tag or digest reference, and the digest when it is one."""
        if isinstance(reference, Digest):
            return str(reference), reference
        if ":" in reference:
            digest = Digest.parse(reference)
            return str(digest), digest
        return validate_tag(reference), None

    @staticmethod
    def _name(repository: str, reference: str, digest: Digest | None) -> str:
        return f"{repository}@{reference}" if digest is not None else f"{repository}:{reference}"

    def _json(self, response: urllib3.BaseHTTPResponse, what: str) -> dict[str, Any]:
        try:
            document = json.loads(response.data)
        except (ValueError, RecursionError):
            raise _malformed(what, self.registry, "not JSON") from None
        if not isinstance(document, dict):
            raise _malformed(what, self.registry, "not a JSON object")
        return document

    def _pages(self, path: str, key: str, scope: str, what: str, n: int | None) -> Iterator[str]:
        """The strings of ``key`` across every page, following ``Link``.

        Without a Link, a page of exactly ``n`` entries is followed by a request
        with ``last=`` (the spec makes Link optional); such a page yields only
        entries sorting after ``last``, so a registry that ignores ``last`` or ``n``
        (distribution ignores ``n`` on tags) ends the listing instead of repeating it.
        """
        if n is not None and n < 1:
            raise InvalidArgumentError(f"{what}: page size must be at least 1, got {n}")
        url = path + (f"?{urlencode({'n': n})}" if n is not None else "")
        seen = {url}
        after: str | None = None
        for _ in range(_MAX_PAGES):
            response = self._transport.request("GET", url, scope=scope, what=what)
            assert response is not None
            items = self._json(response, what).get(key)
            if items is None:
                items = []  # distribution: {"tags": null} for a repository without tags
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise _malformed(what, self.registry, f"{key!r} is not a list of strings")
            if after is not None:
                items = [item for item in items if item > after]
            yield from items
            try:
                link = next_link(response.headers.getlist("Link"), url)
            except InvalidArgumentError as exc:
                raise _malformed(what, self.registry, exc.message) from None
            after = None
            if link is None:
                if n is None or len(items) != n:
                    return
                after = items[-1]
                link = f"{path}?{urlencode({'n': n, 'last': after})}"
            if link in seen:
                raise UnavailableError(f"{what}: {self.registry} sent the page {link} twice")
            seen.add(link)
            url = link
        raise UnavailableError(f"{what}: {self.registry} sent more than {_MAX_PAGES} pages")

    # -- discovery ---------------------------------------------------------------
    def ping(self) -> None:
        """Check that the registry speaks the distribution API (``GET /v2/``), authenticating if asked.

        Raises UnimplementedError when ``/v2/`` answers 404.
        """
        try:
            self._transport.request("GET", self._transport.url("/v2/"), scope="", what="ping")
        except NotFoundError:
            raise UnimplementedError(
                f"{self.base_url} does not serve the OCI distribution API (GET /v2/ answered 404)"
            ) from None

    def catalog(self, n: int | None = None) -> Iterator[str]:
        """Every repository name, page by page (``n`` per page when given); lazy.

        Raises (when iterated) UnimplementedError or NotFoundError when the
        registry offers no catalog, InvalidArgumentError for ``n`` < 1.
        """
        return self._pages(self._transport.url("/v2/_catalog"), "repositories", _CATALOG_SCOPE, "catalog", n)

    def tags(self, repository: str, n: int | None = None) -> Iterator[str]:
        """Every tag of ``repository`` in the registry's order, page by page; lazy.

        Raises (when iterated) NotFoundError (NameUnknownError) for an unknown repository.
        """
        url = self._path(repository, "tags", "list")
        return self._pages(url, "tags", _pull(repository), f"tags of {repository}", n)

    # -- manifests ---------------------------------------------------------------
    def get_manifest(
        self, repository: str, reference: str | Digest, accept: Sequence[str] = ALL_MANIFEST_TYPES
    ) -> FetchedManifest:
        """The manifest under a tag or digest, its bytes exactly as served.

        The digest is the one the registry names in ``Docker-Content-Digest``
        (checked against the bytes with that algorithm), the addressed digest
        (checked too), or the sha256 of the bytes. Raises NotFoundError
        (ManifestUnknownError, NameUnknownError), DataLossError when the bytes
        do not match a digest, ResourceExhaustedError above
        :data:`MAX_MANIFEST_BYTES`.
        """
        ref, addressed = self._reference(reference)
        url = self._path(repository, "manifests", ref)
        what = f"manifest {self._name(repository, ref, addressed)}"
        response = self._transport.request(
            "GET", url, scope=_pull(repository), what=what, headers={"Accept": ", ".join(accept)}, stream=True
        )
        assert response is not None
        data = self._transport.read_all(response, MAX_MANIFEST_BYTES, what)
        media_type = _media_type(response) or self._declared_type(data)
        digest = self._verified(data, _header_digest(response), addressed, what)
        return FetchedManifest(media_type, digest, data)

    @staticmethod
    def _declared_type(data: bytes) -> str:
        try:
            value = json.loads(data).get("mediaType")
        except (ValueError, AttributeError, RecursionError):
            value = None
        return value if isinstance(value, str) else "application/octet-stream"

    @staticmethod
    def _verified(data: bytes, served: Digest | None, addressed: Digest | None, what: str) -> Digest:
        for claimed in (served, addressed):
            if claimed is not None and Digest.of(data, claimed.algorithm) != claimed:
                raise DataLossError(
                    f"{what}: the {len(data)} bytes received hash to "
                    f"{Digest.of(data, claimed.algorithm)}, not {claimed}"
                )
        return addressed or served or Digest.of(data)

    def head_manifest(
        self, repository: str, reference: str | Digest, accept: Sequence[str] = ALL_MANIFEST_TYPES
    ) -> Descriptor | None:
        """The manifest's descriptor from a HEAD, or None when there is no such manifest.

        When the registry leaves out the digest or the size on HEAD, the manifest
        is fetched (and verified) to tell them.
        """
        ref, addressed = self._reference(reference)
        what = f"manifest {self._name(repository, ref, addressed)}"
        response = self._transport.request(
            "HEAD",
            self._path(repository, "manifests", ref),
            scope=_pull(repository),
            what=what,
            headers={"Accept": ", ".join(accept)},
            absent_ok=True,
        )
        if response is None:
            return None
        digest = addressed or _header_digest(response)
        length = response.headers.get("Content-Length", "")
        media_type = _media_type(response)
        if digest is None or not length.isdigit() or media_type is None:
            try:
                return self.get_manifest(repository, reference, accept).descriptor()
            except NotFoundError:
                return None
        return Descriptor(media_type, digest, int(length))

    def put_manifest(self, repository: str, reference: str | Digest, data: bytes, media_type: str) -> Digest:
        """Store ``data`` as a manifest under a tag or digest; returns its digest.

        The digest is computed here (with the addressed digest's algorithm, else
        sha256); a registry that reports another one in the same algorithm
        raises DataLossError. Raises InvalidArgumentError (ManifestInvalidError,
        DigestInvalidError, ManifestBlobUnknownError) when the registry refuses
        the manifest, ResourceExhaustedError when it is too large.
        """
        ref, addressed = self._reference(reference)
        what = f"manifest {self._name(repository, ref, addressed)}"
        ours = Digest.of(data, addressed.algorithm if addressed else "sha256")
        if addressed is not None and ours != addressed:
            raise InvalidArgumentError(f"{what}: the manifest bytes hash to {ours}")
        response = self._transport.request(
            "PUT",
            self._path(repository, "manifests", ref),
            scope=_push(repository),
            what=what,
            ok=(200, 201),
            headers={"Content-Type": media_type},
            body=bytes(data),
        )
        assert response is not None
        self._check_reported(response, ours, what)
        return ours

    @staticmethod
    def _check_reported(response: urllib3.BaseHTTPResponse, ours: Digest, what: str) -> None:
        served = _header_digest(response)
        if served is not None and served.algorithm == ours.algorithm and served != ours:
            raise DataLossError(f"{what}: the registry stored {served}, but the bytes sent hash to {ours}")

    def delete_manifest(self, repository: str, reference: str | Digest) -> None:
        """Delete a manifest by digest (and every tag on it), or only a tag where the registry allows.

        Raises NotFoundError when absent, UnimplementedError (or InvalidArgumentError)
        when the registry does not allow the deletion.
        """
        ref, addressed = self._reference(reference)
        what = f"manifest {self._name(repository, ref, addressed)}"
        self._transport.request(
            "DELETE",
            self._path(repository, "manifests", ref),
            scope=_delete(repository),
            what=what,
            ok=(200, 202, 204),
        )

    # -- blobs -------------------------------------------------------------------
    def head_blob(self, repository: str, digest: Digest) -> int | None:
        """The blob's size if ``repository`` has it, else None."""
        response = self._transport.request(
            "HEAD",
            self._path(repository, "blobs", str(digest)),
            scope=_pull(repository),
            what=f"blob {digest} in {repository}",
            absent_ok=True,
        )
        if response is None:
            return None
        length = response.headers.get("Content-Length", "")
        if not length.isdigit():
            raise _malformed(f"blob {digest} in {repository}", self.registry, "HEAD without Content-Length")
        return int(length)

    def open_blob(self, repository: str, digest: Digest, offset: int = 0, *, verify: bool = True) -> BlobReader:
        """Start reading the blob from ``offset``; the reader streams and verifies (see :class:`BlobReader`).

        Blocks until the response headers arrive. Raises NotFoundError
        (BlobUnknownError) when ``repository`` has no such blob, OutOfRangeError
        when ``offset`` lies past its end (``offset`` equal to the size gives an
        empty reader). With ``verify`` false the reader does not hash what it
        yields: for callers that verify the bytes themselves (a content-store
        ingest checks the digest at commit), so they are not hashed twice.
        """
        if offset < 0:
            raise InvalidArgumentError(f"blob {digest}: offset {offset} is negative")
        what = f"blob {digest} in {repository}"
        response = self._transport.request(
            "GET",
            self._path(repository, "blobs", str(digest)),
            scope=_pull(repository),
            what=what,
            ok=(200, 206, 416) if offset else (200,),
            headers={"Range": f"bytes={offset}-"} if offset else None,
            stream=True,
        )
        assert response is not None
        length = response.headers.get("Content-Length", "")
        if response.status == 200:
            size = int(length) if length.isdigit() else None
            return BlobReader(
                response, self._transport, digest, offset=offset, size=size, what=what, whole=True, verify=verify
            )
        total = self._range_total(response)
        if response.status == 416:
            self._transport.drain(response)
            if total == offset:
                return BlobReader(
                    None, self._transport, digest, offset=offset, size=total, what=what, whole=False
                )
            raise OutOfRangeError(f"{what}: offset {offset} lies past its end ({total} bytes)")
        if total is None and length.isdigit():
            total = offset + int(length)
        return BlobReader(
            response, self._transport, digest, offset=offset, size=total, what=what, whole=False
        )

    @staticmethod
    def _range_total(response: urllib3.BaseHTTPResponse) -> int | None:
        """The complete length from ``Content-Range: bytes a-b/N`` or ``bytes */N``."""
        value = response.headers.get("Content-Range", "")
        total = value.rpartition("/")[2].strip()
        return int(total) if total.isdigit() else None

    def push_blob(self, repository: str, source: ByteSource, size: int, digest: Digest) -> None:
        """Upload ``size`` bytes of ``source`` as blob ``digest``: POST a session, then one PUT.

        The PUT goes to the session's ``Location`` (relative or absolute) with
        ``digest=`` added to its query and the body sent with Content-Length.
        A seekable ``source`` is rewound if the PUT must be re-sent after a 401.
        Raises InvalidArgumentError (DigestInvalidError, SizeInvalidError) when
        the registry refuses the bytes, or when ``source`` ends before ``size``
        bytes; errors raised by ``source.read`` propagate unchanged. A failed
        upload's session is cancelled (best effort).
        """
        what = f"blob {digest} upload to {repository}"
        start = self._path(repository, "blobs", "uploads") + "/"
        response = self._transport.request("POST", start, scope=_push(repository), what=what, ok=(202,))
        assert response is not None
        location = self._location(response, start, what)
        rewind = None
        seek, tell = getattr(source, "seek", None), getattr(source, "tell", None)
        if callable(seek) and callable(tell) and getattr(source, "seekable", lambda: False)():
            position = tell()

            def rewind() -> None:
                seek(position)

        try:
            done = self._transport.request(
                "PUT",
                _with_query(location, digest=str(digest)),
                scope=_push(repository),
                what=what,
                ok=(201, 204),
                headers={"Content-Type": "application/octet-stream"},
                source=(source, size),
                rewind=rewind,
            )
        except BaseException:
            self._cancel(location, repository, what)
            raise
        assert done is not None
        self._check_reported(done, digest, what)

    def _location(self, response: urllib3.BaseHTTPResponse, request_url: str, what: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise _malformed(what, self.registry, f"HTTP {response.status} without Location")
        return urljoin(request_url, location)

    def _cancel(self, location: str, repository: str, what: str) -> None:
        """Drop an upload session the client no longer needs; failures only logged (end-14 is [dev])."""
        try:
            self._transport.request(
                "DELETE", location, scope=_push(repository), what=what, ok=(200, 202, 204), absent_ok=True
            )
        except CairnError as exc:
            log.debug("cancelling %s failed: %s", location, exc.message, extra={"registry": self.registry})

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        """Link blob ``digest`` of ``from_repository`` into ``repository`` without sending it.

        True when mounted (201); False when the registry opened an upload
        session instead (202), which is cancelled: the caller then pushes.
        """
        validate_repository(from_repository)
        what = f"blob {digest} mount from {from_repository} to {repository}"
        url = (
            self._path(repository, "blobs", "uploads")
            + "/?"
            + urlencode({"mount": str(digest), "from": from_repository})
        )
        scope = f"{_push(repository)} {_pull(from_repository)}"
        response = self._transport.request("POST", url, scope=scope, what=what, ok=(201, 202))
        assert response is not None
        if response.status == 201:
            return True
        self._cancel(self._location(response, url, what), repository, what)
        return False

    def delete_blob(self, repository: str, digest: Digest) -> None:
        """Unlink the blob from ``repository``.

        Raises NotFoundError (BlobUnknownError) when absent, UnimplementedError
        when the registry does not allow deletion.
        """
        self._transport.request(
            "DELETE",
            self._path(repository, "blobs", str(digest)),
            scope=_delete(repository),
            what=f"blob {digest} in {repository}",
            ok=(200, 202, 204),
        )

    # -- referrers ---------------------------------------------------------------
    def referrers(
        self, repository: str, digest: Digest, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """The descriptors of manifests in ``repository`` whose ``subject`` is ``digest``.

        Uses the referrers API and follows its pages; when the registry has no
        such API (404), reads the referrers tag schema's index instead
        (``sha256-<hex>``), and an absent tag means no referrers. Filters by
        ``artifact_type`` here when the registry did not. Never NotFoundError.
        """
        what = f"referrers of {digest} in {repository}"
        url = self._path(repository, "referrers", str(digest))
        if artifact_type is not None:
            url += "?" + urlencode({"artifactType": artifact_type})
        found: list[Descriptor] = []
        seen = {url}
        for page in range(_MAX_PAGES):
            response = self._transport.request(
                "GET",
                url,
                scope=_pull(repository),
                what=what,
                headers={"Accept": mediatypes.OCI_INDEX},
                absent_ok=True,
            )
            if response is None:
                if page:
                    raise UnavailableError(f"{what}: {self.registry} lost a page ({url})")
                return self._referrers_by_tag(repository, digest, artifact_type)
            entries = self._json(response, what).get("manifests") or []
            if not isinstance(entries, list):
                raise _malformed(what, self.registry, "'manifests' is not a list")
            try:
                descriptors = [Descriptor.from_dict(e, f"manifests[{i}]") for i, e in enumerate(entries)]
            except InvalidArgumentError as exc:
                raise _malformed(what, self.registry, exc.message) from None
            filtered = "artifacttype" in response.headers.get("OCI-Filters-Applied", "").lower()
            found.extend(
                d
                for d in descriptors
                if artifact_type is None or filtered or d.artifact_type == artifact_type
            )
            link = next_link(response.headers.getlist("Link"), url)
            if link is None:
                return found
            if link in seen:
                raise UnavailableError(f"{what}: {self.registry} sent the page {link} twice")
            seen.add(link)
            url = link
        raise UnavailableError(f"{what}: {self.registry} sent more than {_MAX_PAGES} pages")

    def _referrers_by_tag(
        self, repository: str, digest: Digest, artifact_type: str | None
    ) -> list[Descriptor]:
        try:
            fetched = self.get_manifest(repository, _referrers_tag(digest), (mediatypes.OCI_INDEX,))
        except NotFoundError:
            return []
        try:
            index = parse_manifest(fetched.data, fetched.media_type)
        except InvalidArgumentError as exc:
            raise _malformed(f"referrers tag of {digest}", self.registry, exc.message) from None
        if not isinstance(index, ImageIndex):
            return []
        return [d for d in index.manifests if artifact_type is None or d.artifact_type == artifact_type]
