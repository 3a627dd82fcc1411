"""The catalog: names, tags, records, logs and labels, in SQLite or PostgreSQL.

Open one with :func:`open_catalog` from a URL (``sqlite:///path/cairn.db`` or
``postgresql://user@host/dbname``);
each area of cairn has its own query class over the shared engine
(``catalog.content`` for the content store, ``catalog.ingest_uploads`` for
its ingests in an object store, ``catalog.registry`` for the
OCI registry, ``catalog.images`` for the image service, ``catalog.leases`` for
containerd leases, ``catalog.gc`` for garbage collection, ``catalog.syncs`` for Directory
syncs, ``catalog.warg`` for the Warg registry).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from urllib.parse import urlsplit

from cairn.core.catalog.claims import Claims, LocalClaims
from cairn.core.catalog.content import BlobRow, ContentCatalog, IngestRow
from cairn.core.catalog.database import Database, Transaction
from cairn.core.catalog.gc import GcCatalog
from cairn.core.catalog.images import ImageLayerRow, ImageRefRow, ImageRow, ImagesCatalog
from cairn.core.catalog.ingest_uploads import IngestUpload, IngestUploadCatalog, UploadPiece
from cairn.core.catalog.integrity import IntegrityCatalog, IntegrityRun
from cairn.core.catalog.leases import LeaseCatalog, LeaseResource, LeaseRow
from cairn.core.catalog.migrations import apply_migrations
from cairn.core.catalog.registry import ManifestRow, RegistryCatalog
from cairn.core.catalog.sqlite import SqliteDatabase
from cairn.core.catalog.syncs import SyncCatalog, SyncRow
from cairn.core.catalog.warg import CheckpointRow, WargCatalog, WargLogRow, WargRecordRow
from cairn.core.errors import InvalidArgumentError

__all__ = [
    "BlobRow",
    "Catalog",
    "Claims",
    "CheckpointRow",
    "ContentCatalog",
    "Database",
    "GcCatalog",
    "ImageLayerRow",
    "ImageRefRow",
    "ImageRow",
    "ImagesCatalog",
    "IngestRow",
    "IngestUpload",
    "IngestUploadCatalog",
    "LeaseCatalog",
    "LeaseResource",
    "LeaseRow",
    "IntegrityCatalog",
    "IntegrityRun",
    "LocalClaims",
    "ManifestRow",
    "RegistryCatalog",
    "SyncCatalog",
    "SyncRow",
    "UploadPiece",
    "Transaction",
    "WargCatalog",
    "WargLogRow",
    "WargRecordRow",
    "open_catalog",
]


class Catalog:
    """One database engine and the query classes of every area that uses it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.claims = db.claims
        self.content = ContentCatalog(db)
        self.ingest_uploads = IngestUploadCatalog(db)
        self.registry = RegistryCatalog(db)
        self.images = ImagesCatalog(db)
        self.syncs = SyncCatalog(db)
        self.warg = WargCatalog(db)
        self.leases = LeaseCatalog(db)
        self.gc = GcCatalog(db)
        self.integrity = IntegrityCatalog(db)

    @property
    def url(self) -> str:
        return self.db.url

    def close(self) -> None:
        self.db.close()


def open_catalog(url: str) -> Catalog:
    """Open (and migrate) the catalog at ``url``: ``sqlite:///path`` or ``postgresql://...``.

    Raises InvalidArgumentError for an unusable URL, UnavailableError when the database
    cannot be reached, FailedPreconditionError when its schema is newer than this cairn.
    """
    parts = urlsplit(url)
    db: Database
    migrating: AbstractContextManager[None] = nullcontext()
    if parts.scheme == "sqlite":
        path = parts.path if not parts.netloc else parts.netloc + parts.path
        if not path:
            raise InvalidArgumentError(f"catalog URL {url!r} names no file")
        db = SqliteDatabase(path)
    elif parts.scheme in ("postgresql", "postgres"):
        # Imported here: psycopg costs ~125 ms at start-up, and the embedded default never needs it.
        from cairn.core.catalog.postgres import PostgresDatabase

        postgres = PostgresDatabase(url)
        db, migrating = postgres, postgres.migrating()
    else:
        raise InvalidArgumentError(
            f"catalog URL {url!r}: unsupported scheme {parts.scheme!r} "
            "(use sqlite:///path or postgresql://user@host/dbname)"
        )
    try:
        with migrating:
            apply_migrations(db)
    except BaseException:
        db.close()
        raise
    return Catalog(db)
