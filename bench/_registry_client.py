"""The benchmark's HTTP client for the OCI distribution API, with ``requests``.

Downloads use ``requests`` ``iter_content(1 MiB)`` (specs/measurements.md: httpx
re-chunking in Python is 3x slower, so it is not used). Uploads send a file
object with its ``Content-Length``. A plain ``requests`` session hands a file
body to urllib3, which reads it in 16 KiB blocks; sessions made here send
1 MiB blocks instead (:class:`BlockAdapter`), so the Python client costs
less CPU per GiB and leaves more of the 2 vCPUs to the server under test.

Every call checks the status code the spec gives (oci-distribution.md 4.2,
4.4) and raises :class:`UnexpectedResponse` naming the request, what was
expected and what came back. Every request has a timeout.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

__all__ = [
    "BIG_TIMEOUT",
    "BlockAdapter",
    "Registry",
    "UnexpectedResponse",
    "new_session",
]

#: (connect, read) seconds; the read timeout also bounds the wait for a 1 GiB commit
BIG_TIMEOUT = (10.0, 300.0)
SMALL_TIMEOUT = (5.0, 30.0)
SEND_BLOCK = 1 << 20
READ_CHUNK = 1 << 20
OCTET = "application/octet-stream"


class UnexpectedResponse(RuntimeError):
    """A response other than the one the spec gives."""

    def __init__(self, server: str, request: str, expected: str, got: str) -> None:
        super().__init__(f"{server}: {request}: expected {expected}, got {got}")
        self.server = server
        self.request = request
        self.expected = expected
        self.got = got


class BlockAdapter(HTTPAdapter):
    """An adapter whose connections send request bodies in ``SEND_BLOCK`` pieces."""

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kw: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, blocksize=SEND_BLOCK, **kw)


def new_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies from the environment: loopback only
    adapter = BlockAdapter(pool_connections=1, pool_maxsize=1)
    session.mount("http://", adapter)
    return session


def _describe(response: requests.Response, body: bool = True) -> str:
    text = ""
    if body and response.request.method != "HEAD":
        try:
            text = " " + response.text[:300].strip()
        except (requests.RequestException, UnicodeDecodeError):
            text = ""
    headers = {k: v for k, v in response.headers.items() if k.lower() in _SHOWN_HEADERS}
    return f"{response.status_code} {headers}{text}"


_SHOWN_HEADERS = {"location", "content-length", "docker-content-digest", "range", "content-type"}


class Registry:
    """One registry's ``/v2/`` API at ``base`` (``http://127.0.0.1:PORT``)."""

    def __init__(self, name: str, base: str) -> None:
        self.name = name
        self.base = base

    # -- helpers ------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def _resolve(self, location: str) -> str:
        """An upload or blob Location, absolute or relative, made absolute (spec section 2)."""
        return urljoin(self.base + "/", location)

    @staticmethod
    def _with_digest(location: str, digest: str) -> str:
        """Append ``digest=`` to the location's own query, as clients do (spec section 8)."""
        return f"{location}{'&' if '?' in location else '?'}digest={digest}"

    def _expect(self, response: requests.Response, status: int, request: str) -> None:
        if response.status_code != status:
            raise UnexpectedResponse(self.name, request, str(status), _describe(response))

    def _location(self, response: requests.Response, request: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise UnexpectedResponse(self.name, request, "a Location header", _describe(response))
        return self._resolve(location)

    def _check_digest_header(self, response: requests.Response, digest: str, request: str) -> None:
        got = response.headers.get("Docker-Content-Digest")
        if got != digest:
            raise UnexpectedResponse(
                self.name, request, f"Docker-Content-Digest: {digest}", f"{got!r} ({_describe(response)})"
            )

    # -- uploads --------------------------------------------------------------------------------
    def start_upload(self, session: requests.Session, repo: str, timeout: Any = SMALL_TIMEOUT) -> str:
        """POST an upload session (end-4a): 202 and its Location."""
        request = f"POST /v2/{repo}/blobs/uploads/"
        response = session.post(self.url(f"/v2/{repo}/blobs/uploads/"), timeout=timeout)
        self._expect(response, 202, request)
        return self._location(response, request)

    def push_file(self, session: requests.Session, repo: str, path: Path, digest: str, size: int) -> None:
        """POST, then one monolithic ``PUT ?digest=`` whose body streams from ``path``."""
        location = self.start_upload(session, repo, BIG_TIMEOUT)
        request = f"PUT <upload>?digest={digest} ({size} bytes from a file)"
        with open(path, "rb") as f:
            response = session.put(
                self._with_digest(location, digest),
                data=f,
                headers={"Content-Type": OCTET, "Content-Length": str(size)},
                timeout=BIG_TIMEOUT,
            )
        self._expect(response, 201, request)
        self._check_digest_header(response, digest, request)

    def push_chunked(
        self,
        session: requests.Session,
        repo: str,
        path: Path,
        digest: str,
        size: int,
        chunk: int,
    ) -> int:
        """POST, ``PATCH`` chunks with ``Content-Range``, final empty ``PUT ?digest=``; returns PATCHes."""
        location = self.start_upload(session, repo, BIG_TIMEOUT)
        patches = 0
        with open(path, "rb") as f:
            for start in range(0, size, chunk):  # bounded: size / chunk iterations
                data = f.read(min(chunk, size - start))
                end = start + len(data) - 1
                request = f"PATCH <upload> Content-Range: {start}-{end}"
                response = session.patch(
                    location,
                    data=data,
                    headers={
                        "Content-Type": OCTET,
                        "Content-Range": f"{start}-{end}",
                        "Content-Length": str(len(data)),
                    },
                    timeout=BIG_TIMEOUT,
                )
                self._expect(response, 202, request)
                got_range = response.headers.get("Range")
                if got_range != f"0-{end}":
                    raise UnexpectedResponse(self.name, request, f"Range: 0-{end}", _describe(response))
                location = self._location(response, request)
                patches += 1
        request = f"PUT <upload>?digest={digest} (empty body after {patches} PATCHes)"
        response = session.put(
            self._with_digest(location, digest),
            data=b"",
            headers={"Content-Length": "0"},
            timeout=BIG_TIMEOUT,
        )
        self._expect(response, 201, request)
        self._check_digest_header(response, digest, request)
        return patches

    def push_bytes(self, session: requests.Session, repo: str, data: bytes, digest: str) -> None:
        """POST + monolithic ``PUT ?digest=`` with a small body (the small-blob push)."""
        location = self.start_upload(session, repo)
        response = session.put(
            self._with_digest(location, digest),
            data=data,
            headers={"Content-Type": OCTET},
            timeout=SMALL_TIMEOUT,
        )
        self._expect(response, 201, f"PUT <upload>?digest={digest} ({len(data)} bytes)")

    # -- reads ----------------------------------------------------------------------------------
    def pull(self, session: requests.Session, repo: str, digest: str, size: int, verify: bool) -> None:
        """GET a blob streamed in 1 MiB pieces, discarded or hashed; checks length (and digest)."""
        request = f"GET /v2/{repo}/blobs/{digest}"
        hasher = hashlib.sha256() if verify else None
        received = 0
        deadline = time.monotonic() + BIG_TIMEOUT[1]
        with session.get(self.url(f"/v2/{repo}/blobs/{digest}"), stream=True, timeout=BIG_TIMEOUT) as r:
            self._expect(r, 200, request)
            for piece in r.iter_content(READ_CHUNK):
                received += len(piece)
                if hasher is not None:
                    hasher.update(piece)
                if time.monotonic() > deadline:
                    raise UnexpectedResponse(self.name, request, "the body in time", f"{received} bytes")
        if received != size:
            raise UnexpectedResponse(self.name, request, f"{size} bytes", f"{received} bytes")
        if hasher is not None and f"sha256:{hasher.hexdigest()}" != digest:
            raise UnexpectedResponse(self.name, request, digest, f"sha256:{hasher.hexdigest()}")

    def head(self, session: requests.Session, repo: str, digest: str, size: int) -> None:
        request = f"HEAD /v2/{repo}/blobs/{digest}"
        response = session.head(self.url(f"/v2/{repo}/blobs/{digest}"), timeout=SMALL_TIMEOUT)
        self._expect(response, 200, request)
        if response.headers.get("Content-Length") != str(size):
            raise UnexpectedResponse(self.name, request, f"Content-Length: {size}", _describe(response))

    def get_small(self, session: requests.Session, repo: str, digest: str, data: bytes) -> None:
        request = f"GET /v2/{repo}/blobs/{digest}"
        response = session.get(self.url(f"/v2/{repo}/blobs/{digest}"), timeout=SMALL_TIMEOUT)
        self._expect(response, 200, request)
        if response.content != data:
            raise UnexpectedResponse(
                self.name, request, f"the {len(data)} pushed bytes", f"{len(response.content)} other bytes"
            )

    def ping(self, session: requests.Session) -> None:
        """``GET /v2/``: opens the session's keep-alive connection before timing."""
        response = session.get(self.url("/v2/"), timeout=SMALL_TIMEOUT)
        self._expect(response, 200, "GET /v2/")
