"""Versioned schema migrations, shared by every catalog engine.

Migrations are SQL files ``migrations/NNNN_name.sql`` in the portable subset of
SQLite and PostgreSQL, applied in order, each in its own transaction together
with its row in ``schema_migrations``. A database newer than this code (a
version we do not know) is refused rather than guessed at.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from importlib import resources

from cairn.core.catalog.database import Database
from cairn.core.errors import FailedPreconditionError

__all__ = ["Migration", "apply_migrations", "known_migrations"]

log = logging.getLogger(__name__)
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def known_migrations() -> list[Migration]:
    """Every migration shipped with this version of cairn, oldest first."""
    found = []
    for entry in resources.files("cairn.core.catalog").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    return found


def apply_migrations(db: Database) -> int:
    """Bring ``db`` to the newest schema; returns the resulting version."""
    db.executescript(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
    )
    applied = {row[0] for row in db.query("SELECT version FROM schema_migrations")}
    migrations = known_migrations()
    newest = max((m.version for m in migrations), default=0)
    unknown = sorted(v for v in applied if v > newest)
    if unknown:
        raise FailedPreconditionError(
            f"catalog {db.url} has schema version {unknown[-1]}, newer than this cairn "
            f"understands ({newest}); upgrade cairn"
        )
    for migration in migrations:
        if migration.version in applied:
            continue
        log.info("applying catalog migration %04d_%s", migration.version, migration.name)
        db.executescript(
            migration.sql
            + f";\nINSERT INTO schema_migrations (version, name, applied_at) VALUES "
            f"({migration.version}, '{migration.name}', {time.time_ns()})"
        )
    return newest
