"""Direct access to a store's catalog and content, for maintenance commands (``cairn gc``, ``cairn fsck``).

These commands do not talk to a server: they open the same catalog and content
backend that ``cairn serve`` uses (found from the same flags, ``CAIRN_*``
variables and config file), and they are safe to run while servers are
serving, because every change they make goes through catalog transactions and
the same coordination the servers use. That is why the store is opened
*without* crash recovery: removing ingest data that no catalog row owns is
only safe in a process that knows no server is creating one at that moment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from cairn.core.catalog import Catalog, open_catalog
from cairn.core.content import open_backend
from cairn.core.content.namespaced import NamespacedStore
from cairn.core.errors import InvalidArgumentError
from cairn.settings import Settings

__all__ = ["OpenStore", "open_store", "store_options"]

F = TypeVar("F", bound=Callable[..., Any])


def store_options(command: F) -> F:
    """Add ``--data-dir``, ``--config``, ``--catalog`` and ``--content``, named as ``cairn serve`` names them."""
    for option in reversed(
        [
            click.option(
                "--data-dir", type=click.Path(path_type=Path), help="Data directory [CAIRN_DATA_DIR; ./.cairn]"
            ),
            click.option("--config", type=click.Path(path_type=Path), help="TOML config file [CAIRN_CONFIG]"),
            click.option(
                "--catalog",
                "--catalog-url",
                "catalog_url",
                metavar="URL",
                help="Catalog URL [CAIRN_CATALOG_URL; sqlite://<data-dir>/cairn.db]",
            ),
            click.option(
                "--content",
                "--content-url",
                "content_url",
                metavar="URL",
                help="Content backend URL [CAIRN_CONTENT_URL; file://<data-dir>/content]",
            ),
        ]
    ):
        command = option(command)
    return command


@dataclass(frozen=True, slots=True)
class OpenStore:
    """A catalog and the content store over it, as a server would see them."""

    settings: Settings
    catalog: Catalog
    store: NamespacedStore


@contextmanager
def open_store(settings: Settings) -> Iterator[OpenStore]:
    """Open the catalog (migrated) and the content store of ``settings``; close both at the end.

    The content store is not recovered (see the module docstring). A SQLite catalog
    that does not exist is refused rather than created: a mistyped ``--data-dir``
    should not look like an empty, healthy store.
    """
    url = urlsplit(settings.catalog)
    if url.scheme == "sqlite" and not Path(url.netloc + url.path).exists():
        raise InvalidArgumentError(f"no cairn store at {settings.data_dir}: {url.netloc + url.path} does not exist")
    catalog = open_catalog(settings.catalog)
    try:
        store = NamespacedStore(open_backend(settings.content, catalog), catalog.content, catalog.claims)
        try:
            yield OpenStore(settings, catalog, store)
        finally:
            store.close()
    finally:
        catalog.close()
