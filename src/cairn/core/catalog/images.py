"""Catalog rows of the image service: images, their layers and blobs, references, build cache.

The local image store (``cairn.images.store``) is the only user. Bytes are not
here: manifests, configs and layers are content-store blobs; these rows say
which images exist (id = config digest), what they are made of, and which tags
and digest references name them. Migration ``0005_images.sql`` has the schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cairn.core.catalog.database import Database, Row, Transaction

__all__ = ["ImageLayerRow", "ImageRefRow", "ImageRow", "ImagesCatalog"]


@dataclass(frozen=True, slots=True)
class ImageLayerRow:
    digest: str
    media_type: str
    size: int
    diff_id: str
    uncompressed_size: int
    chain_id: str


@dataclass(frozen=True, slots=True)
class ImageRow:
    id: str
    manifest_digest: str
    manifest_media_type: str
    config_media_type: str
    created: str
    size: int
    parent: str | None
    added_at: int
    layers: tuple[ImageLayerRow, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageRefRow:
    name: str
    repository: str
    kind: str  # "tag" | "digest"
    image_id: str
    created_at: int


_IMAGE_COLUMNS = "id, manifest_digest, manifest_media_type, config_media_type, created, size, parent, added_at"
_REF_COLUMNS = "name, repository, kind, image_id, created_at"


def _ref(row: Row) -> ImageRefRow:
    return ImageRefRow(row[0], row[1], row[2], row[3], row[4])


class ImagesCatalog:
    """Queries over the ``image*`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- images ------------------------------------------------------------------
    def _with_layers(self, rows: list[Row]) -> list[ImageRow]:
        if not rows:
            return []
        layers: dict[str, list[ImageLayerRow]] = {row[0]: [] for row in rows}
        marks = ",".join("?" * len(layers))
        for lrow in self._db.query(
            "SELECT image_id, digest, media_type, size, diff_id, uncompressed_size, chain_id"
            f" FROM image_layers WHERE image_id IN ({marks}) ORDER BY image_id, position",
            list(layers),
        ):
            layers[lrow[0]].append(ImageLayerRow(*lrow[1:]))
        return [
            ImageRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], tuple(layers[row[0]]))
            for row in rows
        ]

    def get(self, image_id: str) -> ImageRow | None:
        rows = self._db.query(f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id = ?", (image_id,))
        found = self._with_layers(rows)
        return found[0] if found else None

    def all_images(self) -> list[ImageRow]:
        return self._with_layers(self._db.query(f"SELECT {_IMAGE_COLUMNS} FROM images ORDER BY id"))

    def ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """Image ids whose hex starts with ``prefix`` (hex only; callers validate it)."""
        rows = self._db.query(
            "SELECT id FROM images WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            (f"sha256:{prefix}", f"sha256:{prefix}g", limit),
        )
        return [row[0] for row in rows]

    def put_image(self, image: ImageRow, blobs: Sequence[str], refs: Sequence[ImageRefRow]) -> None:
        """Insert the image (if new), its layers and blobs, and point ``refs`` at it (moving them)."""
        with self._db.transaction() as tx:
            exists = tx.query("SELECT 1 FROM images WHERE id = ?", (image.id,))
            if not exists:
                tx.execute(
                    f"INSERT INTO images ({_IMAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (image.id, image.manifest_digest, image.manifest_media_type,
                     image.config_media_type, image.created, image.size, image.parent, image.added_at),
                )
                for position, layer in enumerate(image.layers):
                    tx.execute(
                        "INSERT INTO image_layers (image_id, position, digest, media_type, size, diff_id,"
                        " uncompressed_size, chain_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (image.id, position, layer.digest, layer.media_type, layer.size,
                         layer.diff_id, layer.uncompressed_size, layer.chain_id),
                    )
            for digest in dict.fromkeys(blobs):
                tx.execute(
                    "INSERT INTO image_blobs (image_id, digest) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (image.id, digest),
                )
            for ref in refs:
                self._set_ref(tx, ref)

    def delete_image(self, image_id: str) -> bool:
        """Remove the image's rows (layers, blobs, cache entries cascade); refs and children must be gone."""
        with self._db.transaction() as tx:
            return tx.execute("DELETE FROM images WHERE id = ?", (image_id,)) > 0

    def children(self, image_id: str) -> list[str]:
        return [row[0] for row in self._db.query("SELECT id FROM images WHERE parent = ?", (image_id,))]

    def chain_in_use(self, chain_id: str, besides: str) -> bool:
        rows = self._db.query(
            "SELECT 1 FROM image_layers WHERE chain_id = ? AND image_id <> ? LIMIT 1", (chain_id, besides)
        )
        return bool(rows)

    def layers_by_digest(self, digests: Sequence[str]) -> dict[str, ImageLayerRow]:
        """What any image recorded about these layer blobs (diff id, uncompressed size)."""
        found: dict[str, ImageLayerRow] = {}
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            marks = ",".join("?" * len(part))
            for row in self._db.query(
                "SELECT digest, media_type, size, diff_id, uncompressed_size, chain_id"
                f" FROM image_layers WHERE digest IN ({marks})",
                part,
            ):
                found.setdefault(row[0], ImageLayerRow(*row))
        return found

    # -- references --------------------------------------------------------------
    @staticmethod
    def _set_ref(tx: Transaction, ref: ImageRefRow) -> None:
        tx.execute(
            f"INSERT INTO image_refs ({_REF_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET image_id = excluded.image_id, created_at = excluded.created_at",
            (ref.name, ref.repository, ref.kind, ref.image_id, ref.created_at),
        )

    def set_ref(self, ref: ImageRefRow) -> None:
        with self._db.transaction() as tx:
            self._set_ref(tx, ref)

    def get_ref(self, name: str) -> ImageRefRow | None:
        rows = self._db.query(f"SELECT {_REF_COLUMNS} FROM image_refs WHERE name = ?", (name,))
        return _ref(rows[0]) if rows else None

    def refs_of(self, image_id: str) -> list[ImageRefRow]:
        rows = self._db.query(
            f"SELECT {_REF_COLUMNS} FROM image_refs WHERE image_id = ? ORDER BY kind DESC, name",
            (image_id,),
        )
        return [_ref(row) for row in rows]

    def all_refs(self) -> list[ImageRefRow]:
        rows = self._db.query(f"SELECT {_REF_COLUMNS} FROM image_refs ORDER BY kind DESC, name")
        return [_ref(row) for row in rows]

    def delete_ref(self, name: str) -> bool:
        with self._db.transaction() as tx:
            return tx.execute("DELETE FROM image_refs WHERE name = ?", (name,)) > 0

    # -- build cache -------------------------------------------------------------
    def cache_get(self, key: str) -> str | None:
        rows = self._db.query("SELECT image_id FROM image_build_cache WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def cache_put(self, key: str, image_id: str) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO image_build_cache (key, image_id) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET image_id = excluded.image_id",
                (key, image_id),
            )
