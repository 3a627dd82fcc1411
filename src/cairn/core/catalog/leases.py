"""Catalog rows of containerd leases: a lease per namespace, and the resources it holds.

The Leases face (``cairn.api.grpc.leases``), the content API's ``containerd-lease``
header and garbage collection (``cairn.core.gc``) use these. A lease keeps its
resources (``content`` digests, ``ingests`` refs) from being collected until it is
deleted or expires; this module stores them and says nothing about expiry.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from cairn.core.catalog.database import Database, Row, Transaction
from cairn.core.errors import AlreadyExistsError, NotFoundError

__all__ = ["LeaseCatalog", "LeaseResource", "LeaseRow"]


@dataclass(frozen=True, slots=True)
class LeaseRow:
    namespace: str
    id: str
    created_at: int
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LeaseResource:
    """A resource as containerd names it: ``type`` ("content", "ingests", ...) and ``id``."""

    type: str
    id: str


_COLUMNS = "namespace, id, created_at, labels"


def _lease(row: Row) -> LeaseRow:
    return LeaseRow(row[0], row[1], row[2], json.loads(row[3]))


def _not_found(lease: str) -> NotFoundError:
    return NotFoundError(f"lease {lease!r}: not found")


class LeaseCatalog:
    """Queries over ``leases`` and ``lease_resources``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, lease: LeaseRow) -> LeaseRow:
        """Insert ``lease``; AlreadyExistsError if the namespace has a lease of that id."""
        with self._db.transaction() as tx:
            changed = tx.execute(
                f"INSERT INTO leases ({_COLUMNS}) VALUES (?, ?, ?, ?) ON CONFLICT (namespace, id) DO NOTHING",
                (lease.namespace, lease.id, lease.created_at, json.dumps(dict(lease.labels), sort_keys=True)),
            )
        if not changed:
            raise AlreadyExistsError(f"lease {lease.id!r}: already exists")
        return lease

    def get(self, namespace: str, lease: str) -> LeaseRow | None:
        rows = self._db.query(f"SELECT {_COLUMNS} FROM leases WHERE namespace = ? AND id = ?", (namespace, lease))
        return _lease(rows[0]) if rows else None

    def list(self, namespace: str | None = None) -> builtins.list[LeaseRow]:
        """The leases of ``namespace`` (of every namespace when None), by id."""
        if namespace is None:
            rows = self._db.query(f"SELECT {_COLUMNS} FROM leases ORDER BY namespace, id")
        else:
            rows = self._db.query(f"SELECT {_COLUMNS} FROM leases WHERE namespace = ? ORDER BY id", (namespace,))
        return [_lease(row) for row in rows]

    def delete(self, namespace: str, lease: str) -> None:
        """Remove the lease and what it holds; NotFoundError if there is no such lease."""
        with self._db.transaction() as tx:
            if not tx.execute("DELETE FROM leases WHERE namespace = ? AND id = ?", (namespace, lease)):
                raise _not_found(lease)
            tx.execute("DELETE FROM lease_resources WHERE namespace = ? AND lease = ?", (namespace, lease))

    def add_resource(self, namespace: str, lease: str, resource: LeaseResource) -> None:
        """Let ``lease`` hold ``resource`` (idempotent); NotFoundError if there is no such lease."""
        with self._db.transaction() as tx:
            if not self.add_resource_in(tx, namespace, lease, resource):
                raise _not_found(lease)

    @staticmethod
    def add_resource_in(tx: Transaction, namespace: str, lease: str, resource: LeaseResource) -> bool:
        """:meth:`add_resource` inside the caller's transaction; False (nothing added) if no such lease."""
        if not tx.query("SELECT 1 FROM leases WHERE namespace = ? AND id = ?", (namespace, lease)):
            return False
        tx.execute(
            "INSERT INTO lease_resources (namespace, lease, type, resource) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (namespace, lease, type, resource) DO NOTHING",
            (namespace, lease, resource.type, resource.id),
        )
        return True

    def delete_resource(self, namespace: str, lease: str, resource: LeaseResource) -> None:
        """Stop ``lease`` holding ``resource`` (no-op if it did not); NotFoundError if no such lease."""
        with self._db.transaction() as tx:
            self.delete_resource_in(tx, namespace, lease, resource)

    def delete_resource_in(self, tx: Transaction, namespace: str, lease: str, resource: LeaseResource) -> None:
        if not tx.query("SELECT 1 FROM leases WHERE namespace = ? AND id = ?", (namespace, lease)):
            raise _not_found(lease)
        tx.execute(
            "DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND resource = ?",
            (namespace, lease, resource.type, resource.id),
        )

    def resources(self, namespace: str, lease: str) -> builtins.list[LeaseResource]:
        """What ``lease`` holds, by type then id; NotFoundError if there is no such lease."""
        if self.get(namespace, lease) is None:
            raise _not_found(lease)
        rows = self._db.query(
            "SELECT type, resource FROM lease_resources WHERE namespace = ? AND lease = ? ORDER BY type, resource",
            (namespace, lease),
        )
        return [LeaseResource(row[0], row[1]) for row in rows]

    def held(self, namespace: str, type_: str) -> set[str]:
        """Ids of resources of ``type_`` that some lease of ``namespace`` holds."""
        rows = self._db.query(
            "SELECT DISTINCT resource FROM lease_resources WHERE namespace = ? AND type = ?", (namespace, type_)
        )
        return {row[0] for row in rows}
