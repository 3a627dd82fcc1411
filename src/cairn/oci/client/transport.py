"""HTTP to one registry: a urllib3 pool, the 401 dance, and HTTP failures in cairn's vocabulary.

urllib3 does the HTTP: connection pooling and keep-alive, timeouts, following
redirects (a blob GET may be sent to object storage) while dropping
``Authorization`` when the host changes, rewinding file bodies on connection
retries, and enforcing ``Content-Length`` on responses. What it does not do is
written here, by hand:

- retrying once after a ``401`` with what :class:`~cairn.oci.client.auth.Authenticator`
  learned from the challenge;
- turning an error response into one error kind by a table, with the
  registry's OCI error codes and messages (distribution-spec section 5) in the text;
- parsing ``Link: <url>; rel="next"`` (RFC 8288) for pagination: the stdlib has no
  parser, and urllib3 none either (``requests`` has one, but is not a dependency);
  URLs may hold commas and ``;``, so a split on ``,`` is not enough.

Plain ``http`` is used for loopback hosts and when asked (``insecure``), ``https``
otherwise. This module is not for registry semantics (paths, scopes, digests):
that is ``registry.py``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError, ProtocolError
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from cairn import __version__
from cairn.core.errors import (
    CairnError,
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    StorageFullError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from cairn.oci.client.auth import Authenticator
from cairn.oci.errors import (
    BlobUnknownError,
    DigestInvalidError,
    ManifestBlobUnknownError,
    ManifestInvalidError,
    ManifestUnknownError,
    NameInvalidError,
    NameUnknownError,
    RegistryDomainError,
    SizeInvalidError,
    TagInvalidError,
    TooLargeError,
    UploadUnknownError,
)

__all__ = [
    "CHUNK_SIZE",
    "ByteSource",
    "Transport",
    "UnreachableError",
    "base_url",
    "error_for",
    "is_loopback",
]

log = logging.getLogger(__name__)

#: Reads and writes of blob bodies go in pieces of this size.
CHUNK_SIZE = 1 << 20
#: An error body is read up to this size; the rest is dropped.
_ERROR_BODY_MAX = 64 << 10

#: Status -> error kind. Codes found in the body may narrow it (``_BY_CODE``).
_BY_STATUS: dict[int, type[CairnError]] = {
    400: InvalidArgumentError,
    401: UnauthenticatedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: UnimplementedError,
    409: FailedPreconditionError,
    411: InvalidArgumentError,
    412: FailedPreconditionError,
    413: ResourceExhaustedError,
    414: ResourceExhaustedError,
    416: OutOfRangeError,
    429: ResourceExhaustedError,
    501: UnimplementedError,
    507: StorageFullError,  # the registry's disk is full: retry once it has room
}
#: OCI error code -> the domain's narrower class; used only when it agrees with the status's kind.
_BY_CODE: dict[str, type[RegistryDomainError]] = {
    "NAME_UNKNOWN": NameUnknownError,
    "BLOB_UNKNOWN": BlobUnknownError,
    "MANIFEST_UNKNOWN": ManifestUnknownError,
    "BLOB_UPLOAD_UNKNOWN": UploadUnknownError,
    "NAME_INVALID": NameInvalidError,
    "TAG_INVALID": TagInvalidError,
    "DIGEST_INVALID": DigestInvalidError,
    "SIZE_INVALID": SizeInvalidError,
    "MANIFEST_INVALID": ManifestInvalidError,
    "MANIFEST_BLOB_UNKNOWN": ManifestBlobUnknownError,
}
_PHRASES: dict[type[CairnError], str] = {
    NotFoundError: "not found",
    InvalidArgumentError: "rejected as invalid",
    UnauthenticatedError: "authentication failed",
    PermissionDeniedError: "access denied",
    OutOfRangeError: "range not satisfiable",
    UnimplementedError: "not supported by the registry",
    StorageFullError: "refused: the registry's disk is full",
    ResourceExhaustedError: "refused: limit exceeded",
    FailedPreconditionError: "refused",
    UnavailableError: "registry error",
}


class UnreachableError(UnavailableError):
    """Nothing answers at the registry's address (refused, unknown host, connect timeout).

    ``address`` is the ``scheme://host[:port]`` tried, so a caller can tell which
    of several registries is down without parsing the message.
    """

    def __init__(self, message: str, address: str = "") -> None:
        super().__init__(message)
        self.address = address


class ByteSource(Protocol):
    """What a request body is read from: any binary file object, a pipe, a socket file."""

    def read(self, size: int = -1, /) -> bytes: ...


# -- hosts ---------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``::1``, with or without a port."""
    name = urlsplit(f"//{host}").hostname or ""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def base_url(host: str, insecure: bool = False) -> str:
    """``scheme://host[:port]`` for a registry given as ``host[:port]`` or as a URL.

    An explicit ``http://``/``https://`` wins; otherwise plain http for loopback
    hosts or ``insecure``, https for the rest. Raises InvalidArgumentError for
    an empty host or another scheme.
    """
    text = host.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidArgumentError(f"registry {host!r}: expected host[:port] or an http(s) URL")
        return f"{parts.scheme}://{parts.netloc}"
    text = text.rstrip("/")
    if not text or "/" in text:
        raise InvalidArgumentError(f"registry {host!r}: expected host[:port] or an http(s) URL")
    return f"{'http' if insecure or is_loopback(text) else 'https'}://{text}"


# -- Link headers --------------------------------------------------------------
def _oci_errors(body: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return []
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, dict)]


def error_for(status: int, body: bytes, what: str, registry: str) -> CairnError:
    """The vocabulary error for an HTTP error answer about ``what`` from ``registry``.

    The kind comes from the status (5xx: UnavailableError, an unlisted 4xx:
    InvalidArgumentError); an OCI error code in the body narrows it to the
    domain's class (``MANIFEST_UNKNOWN`` -> ManifestUnknownError) when that is a
    subclass of the status's kind. The message names ``what``, the registry and
    every code and message the body carries, or the start of a non-JSON body.
    """
    kind = _BY_STATUS.get(status)
    if kind is None:
        kind = UnavailableError if status >= 500 else InvalidArgumentError
    errors = _oci_errors(body)
    parts: list[str] = []
    for error in errors:
        code, message = error.get("code"), error.get("message")
        parts.append(": ".join(str(x) for x in (code, message) if x) or json.dumps(error)[:200])
    if not parts:
        text = body[:200].decode("utf-8", "replace").strip()
        parts.append(f"HTTP {status}" + (f": {text}" if text and not text.startswith("<") else ""))
    phrase = _PHRASES.get(kind, "failed")
    message = f"{what}: {phrase} at {registry} ({'; '.join(parts)})"
    code = errors[0].get("code") if errors else None
    narrow = _BY_CODE.get(code) if isinstance(code, str) else None
    if narrow is not None and issubclass(narrow, kind):
        return narrow(message, errors[0].get("detail"))
    if status == 413 and kind is ResourceExhaustedError:
        return TooLargeError(message)
    return kind(message)


# -- bodies --------------------------------------------------------------------
class _SourceFailed(Exception):
    """Raised inside urllib3 when reading the caller's body failed; carries the original error."""


class _FixedLengthBody:
    """Feeds urllib3 exactly ``size`` bytes of ``source``, in :data:`CHUNK_SIZE` pieces.

    An iterable rather than a file object: with the explicit ``Content-Length``
    urllib3 then sends it as is (never chunked) and never tries to rewind it.
    A source that ends early would leave the registry waiting for bytes that
    never come, so it is an InvalidArgumentError instead; a source whose read
    fails must not look like a network error to urllib3 (which would retry or
    wrap it), so the error travels out in :class:`_SourceFailed`.
    """

    def __init__(self, source: ByteSource, size: int, what: str) -> None:
        self._source = source
        self._size = size
        self._what = what

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        while sent < self._size:
            want = min(CHUNK_SIZE, self._size - sent)
            try:
                data = self._source.read(want)
            except BaseException as exc:
                raise _SourceFailed(exc) from exc
            if not data:
                raise _SourceFailed(
                    InvalidArgumentError(f"{self._what}: the source ended after {sent} of {self._size} bytes")
                )
            data = bytes(data[:want])
            sent += len(data)
            yield data


# -- the transport ---------------------------------------------------------------
class Transport:
    """Blocking HTTP requests to one registry, authenticated, with failures as cairn errors.

    Thread-safe (urllib3 pools are). ``close()`` drops pooled connections and
    is idempotent. Every request may raise UnavailableError when the registry
    cannot be reached or does not answer within ``timeout`` seconds.
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
        self.base_url = base_url(host, insecure)
        self.netloc = urlsplit(self.base_url).netloc
        self.timeout = timeout
        self._http = urllib3.PoolManager(
            num_pools=4,
            maxsize=8,
            blocksize=CHUNK_SIZE,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            headers={"User-Agent": f"cairn/{__version__}"},
        )
        self.auth = Authenticator(
            self.netloc,
            self._fetch_token,
            username,
            password,
            registry_token=registry_token,
            identity_token=identity_token,
            post=self._post_token,
        )

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (which starts with ``/``) on this registry."""
        return self.base_url + path

    def close(self) -> None:
        self._http.clear()

    # -- requests --------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        scope: str,
        what: str,
        ok: Sequence[int] = (200,),
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        source: tuple[ByteSource, int] | None = None,
        rewind: Callable[[], None] | None = None,
        stream: bool = False,
        absent_ok: bool = False,
    ) -> urllib3.BaseHTTPResponse | None:
        """Send one request and return its response when the status is in ``ok``.

        ``scope`` is the token scope the request needs; ``what`` names the thing
        in error messages. The body is ``body`` or ``size`` bytes read from
        ``source`` (sent with ``Content-Length``, never chunked); after a 401 a
        ``source`` body is sent again only if ``rewind`` can reset it. With
        ``stream`` the body is left unread (the caller must ``release_conn()``
        or read it to the end); otherwise it is preloaded. With ``absent_ok`` a
        404 returns None. Other statuses raise :func:`error_for`'s error; a
        connection failure or timeout raises UnavailableError.
        """
        same_host = urlsplit(url).netloc == self.netloc
        sent_auth: str | None = None
        for attempt in range(2):
            request_headers = dict(headers or {})
            if same_host:
                sent_auth = self.auth.authorization(scope)
                if sent_auth is not None:
                    request_headers["Authorization"] = sent_auth
            payload: bytes | _FixedLengthBody | None = body
            if source is not None:
                payload = _FixedLengthBody(source[0], source[1], what)
                request_headers["Content-Length"] = str(source[1])
            response = self._send(method, url, request_headers, payload, stream)
            if response.status == 401 and attempt == 0 and same_host:
                challenges = response.headers.getlist("WWW-Authenticate")
                error_body = self.drain(response, stream)
                if challenges and (source is None or rewind is not None):
                    try:
                        retry = self.auth.respond(challenges, scope, sent_auth)
                    except InvalidArgumentError as exc:
                        raise UnauthenticatedError(
                            f"{what}: cannot understand the challenge of {self.netloc}: {exc.message}"
                        ) from None
                    if retry:
                        if rewind is not None and source is not None:
                            rewind()
                        continue
                raise self._unauthenticated(error_body, what, sent_auth)
            break
        if response.status in ok:
            return response
        error_body = self.drain(response, stream)
        if response.status == 404 and absent_ok:
            return None
        if response.status == 401:
            raise self._unauthenticated(error_body, what, sent_auth)
        raise error_for(response.status, error_body, what, self.netloc)

    def _unauthenticated(self, body: bytes, what: str, sent: str | None) -> CairnError:
        error = error_for(401, body, what, self.netloc)
        if sent is None and not self.auth.has_credentials:
            return UnauthenticatedError(
                f"{error.message}; the registry needs credentials and none were given"
            )
        return error

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | _FixedLengthBody | None,
        stream: bool,
    ) -> urllib3.BaseHTTPResponse:
        bodiless = method in ("GET", "HEAD", "DELETE") and body is None
        retries = urllib3.Retry(
            total=4,
            connect=2,
            read=1 if bodiless else 0,
            status=0,
            other=0,
            redirect=5 if method in ("GET", "HEAD") else 0,
            raise_on_redirect=False,
            raise_on_status=False,
        )
        try:
            response = self._http.request(
                method,
                url,
                body=body,
                headers=headers,
                retries=retries,
                redirect=method in ("GET", "HEAD"),
                preload_content=not stream,
                decode_content=False,
            )
        except _SourceFailed as exc:
            raise exc.args[0] from None
        except Urllib3Error as exc:
            raise self._unreachable(exc) from None
        log.debug("%s %s -> %s", method, url, response.status, extra={"registry": self.netloc})
        return response

    def _unreachable(self, exc: Exception) -> CairnError:
        """The error for a request that got no response: refused, unresolvable, timed out, cut."""
        reason: object = getattr(exc, "reason", None) or exc
        if isinstance(reason, NewConnectionError | NameResolutionError):
            text = str(reason)  # subclasses of ConnectTimeoutError, but refusals, not timeouts
            for marker in ("Connection refused", "Name or service not known", "No route to host"):
                if marker in text:
                    text = marker
                    break
            return UnreachableError(f"no registry answers at {self.base_url} ({text})", self.base_url)
        if isinstance(reason, ConnectTimeoutError):
            return UnreachableError(
                f"no registry answers at {self.base_url} (no connection within {self.timeout}s)",
                self.base_url,
            )
        if isinstance(reason, Urllib3Timeout):
            return UnavailableError(f"registry {self.netloc} did not answer within {self.timeout}s")
        return UnavailableError(f"the connection to {self.netloc} failed ({reason})")

    def drain(self, response: urllib3.BaseHTTPResponse, stream: bool = True) -> bytes:
        """Up to 64 KiB of the body, then the connection goes back to the pool (or is closed)."""
        try:
            if not stream:
                return response.data[:_ERROR_BODY_MAX]
            return response.read(_ERROR_BODY_MAX, decode_content=False)
        except Urllib3Error:
            return b""
        finally:
            response.release_conn()

    def read_all(self, response: urllib3.BaseHTTPResponse, limit: int, what: str) -> bytes:
        """The whole body of a streamed ``response``, refusing more than ``limit`` bytes."""
        try:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise ResourceExhaustedError(f"{what}: {length} bytes is more than the limit of {limit}")
            chunks: list[bytes] = []
            total = 0
            while True:
                chunk = response.read(CHUNK_SIZE, decode_content=False)
                if not chunk:
                    return b"".join(chunks)
                total += len(chunk)
                if total > limit:
                    raise ResourceExhaustedError(f"{what}: more than the limit of {limit} bytes")
                chunks.append(chunk)
        except (ProtocolError, Urllib3Timeout) as exc:
            raise self.broken(exc, what) from None
        finally:
            response.release_conn()

    def broken(self, exc: Exception, what: str) -> CairnError:
        """The error for a body that stopped early (a cut connection, a short body, a timeout)."""
        if isinstance(exc, Urllib3Timeout):
            return UnavailableError(f"{what}: {self.netloc} stopped sending for {self.timeout}s")
        return DataLossError(f"{what}: the transfer from {self.netloc} broke off ({exc})")

    # -- token service ---------------------------------------------------------
    def _fetch_token(self, url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        try:
            response = self._http.request(
                "GET",
                url,
                headers=dict(headers),
                retries=urllib3.Retry(total=2, redirect=3),
                decode_content=True,
            )
        except Urllib3Error as exc:
            reason = getattr(exc, "reason", None) or exc
            raise UnavailableError(
                f"token service {url.split('?', 1)[0]} is unreachable ({reason})"
            ) from None
        return response.status, response.data

    def _post_token(self, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        try:
            response = self._http.request(
                "POST",
                url,
                body=body,
                headers=dict(headers),
                retries=urllib3.Retry(total=2, redirect=0),
                redirect=False,
                decode_content=True,
            )
        except Urllib3Error as exc:
            reason = getattr(exc, "reason", None) or exc
            raise UnavailableError(f"token service {url.split('?', 1)[0]} is unreachable ({reason})") from None
        return response.status, response.data
