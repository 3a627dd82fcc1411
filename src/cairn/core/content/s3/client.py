"""Where an S3 content store is (its URL) and the client that talks to it.

URL: ``s3://<bucket>[/<prefix>][?endpoint=<url>&region=<name>&addressing=path|virtual&profile=<name>&part_size=<bytes>]``.
Without ``endpoint`` it is AWS S3 in ``region``. Credentials come from boto3's
usual chain: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (and session
token), the shared config and credentials files (``profile`` picks one),
container or instance roles. Nothing secret ever goes in the URL.

The client library is botocore (through boto3's client), chosen by measurement
(docs/benchmarks.md, "S3 client"): against ``rclone serve s3`` on loopback a
1 KiB PUT/GET/HEAD costs ~1.2-1.6 ms with botocore and ~0.3-0.6 ms with obstore,
while 256 MiB downloads ran at the server's speed with either (~500 MB/s). But
obstore offers no resumable multipart upload (object_store hides upload ids and
part numbers, so another replica could not continue an ingest), and it refuses
a ranged GET answered with 200 and a Content-Range, as ``rclone serve s3`` 1.75
answers, where botocore reads it. aiobotocore would only add an event loop to a
store that runs in threads. So botocore, one client per backend (it is
thread-safe), with its connection pool sized for the server's threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.exceptions
from botocore.config import Config

from cairn.core.errors import (
    CairnError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    StorageFullError,
    UnavailableError,
)

__all__ = ["MIN_PART_SIZE", "S3_ERRORS", "S3Location", "error_code", "is_not_found", "translate"]

#: S3's smallest part but the last one.
MIN_PART_SIZE = 5 << 20
DEFAULT_PART_SIZE = 16 << 20
#: Connections kept per client: the gRPC and HTTP worker threads may all read at once.
MAX_CONNECTIONS = 64
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_FULL = {"EntityTooLarge", "QuotaExceeded", "XMinioStorageFull"}


@dataclass(frozen=True, slots=True)
class S3Location:
    """A bucket, a key prefix inside it, and how to reach it."""

    bucket: str
    prefix: str
    endpoint: str | None = None
    region: str | None = None
    addressing: str = "auto"
    profile: str | None = None
    part_size: int = DEFAULT_PART_SIZE

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise InvalidArgumentError(f"content URL {url!r}: expected s3://bucket/prefix?endpoint=...")
        if parts.username or parts.password:
            raise InvalidArgumentError(
                f"content URL {url!r}: credentials do not belong in the URL; "
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or use a profile"
            )
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = set(query) - {"endpoint", "region", "addressing", "profile", "part_size"}
        if unknown:
            raise InvalidArgumentError(f"content URL {url!r}: unknown parameter(s) {', '.join(sorted(unknown))}")
        addressing = query.get("addressing", "auto")
        if addressing not in ("auto", "path", "virtual"):
            raise InvalidArgumentError(f"content URL {url!r}: addressing must be path or virtual")
        try:
            part_size = int(query.get("part_size", DEFAULT_PART_SIZE))
        except ValueError:
            raise InvalidArgumentError(f"content URL {url!r}: part_size is not a number") from None
        if part_size < MIN_PART_SIZE:
            raise InvalidArgumentError(f"content URL {url!r}: part_size must be at least {MIN_PART_SIZE} (5 MiB)")
        endpoint = query.get("endpoint") or None
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise InvalidArgumentError(f"content URL {url!r}: endpoint must be an http:// or https:// URL")
        return cls(
            bucket=parts.netloc,
            prefix=parts.path.strip("/"),
            endpoint=endpoint,
            region=query.get("region") or None,
            # An explicit endpoint is usually MinIO, Ceph or rclone: path style is what they all take.
            addressing=addressing if addressing != "auto" else ("path" if endpoint else "auto"),
            profile=query.get("profile") or None,
            part_size=part_size,
        )

    def __str__(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"

    def key(self, *names: str) -> str:
        return "/".join(p for p in (self.prefix, *names) if p)

    def client(self) -> Any:
        """A botocore S3 client for this location (thread-safe; share it)."""
        session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
        config = Config(
            s3={"addressing_style": self.addressing},
            max_pool_connections=MAX_CONNECTIONS,
            connect_timeout=5,
            read_timeout=60,
            retries={"mode": "standard", "max_attempts": 3},
            # Blobs are verified by cairn's own digests; whole-object CRCs would cost a pass per
            # request and are not answered alike by every S3-compatible server.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            return session.client("s3", endpoint_url=self.endpoint, config=config)
        except botocore.exceptions.BotoCoreError as exc:
            raise FailedPreconditionError(f"content store {self}: {exc}") from exc


#: What a botocore call raises for a store that answered with an error or could not be reached.
S3_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: Exception) -> bool:
    """Whether ``exc`` says the object is not there (404 for HEAD, NoSuchKey for GET)."""
    return isinstance(exc, botocore.exceptions.ClientError) and error_code(exc) in _NOT_FOUND


def translate(exc: Exception, location: S3Location, what: str) -> CairnError:
    """A cairn error for a botocore failure while doing ``what``."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message") or code
        if code in _NOT_FOUND:
            return NotFoundError(f"{what}: not found in content store {location}")
        if code in _FULL:
            return StorageFullError(f"{what}: content store {location} is full: {message}")
        return UnavailableError(f"{what}: content store {location} answered {code}: {message}")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return UnavailableError(
            f"{what}: no credentials for content store {location} "
            "(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a profile)"
        )
    return UnavailableError(f"{what}: content store {location} unreachable: {exc}")
