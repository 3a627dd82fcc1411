"""The S3-compatible content backend: blobs and resumable ingests in an object store."""

from cairn.core.content.s3.backend import S3Backend
from cairn.core.content.s3.client import S3Location

__all__ = ["S3Backend", "S3Location"]
