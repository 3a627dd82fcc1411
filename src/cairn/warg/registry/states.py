"""Validated log states as the catalog keeps them: a small summary per log, releases row by row.

A package log's state summary (head, keys, permissions) is rewritten per
accepted record, but its releases are stored one row each, so a package with
thousands of releases does not rewrite all of them on every record.
"""

from __future__ import annotations

import json
from typing import Any

from cairn.core.catalog.warg import WargCatalog
from cairn.warg.validation import OperatorLogState, PackageLogState, Release

__all__ = ["LogStates", "dump", "load_operator_state", "load_package_state"]


def dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def load_package_state(catalog: WargCatalog, log_id: str, *, with_releases: bool = True) -> PackageLogState:
    """The committed state of a package log (a fresh one if nothing was accepted yet)."""
    row = catalog.get_log(log_id)
    if row is None or not row.state:
        return PackageLogState()
    releases = (
        [Release.from_json(json.loads(body)) for body in catalog.releases(log_id).values()] if with_releases else []
    )
    return PackageLogState.from_parts(json.loads(row.state), releases)


def load_operator_state(catalog: WargCatalog, log_id: str) -> OperatorLogState:
    row = catalog.get_log(log_id)
    if row is None or not row.state:
        return OperatorLogState()
    return OperatorLogState.from_json(json.loads(row.state))


class LogStates:
    """The sequencer's working copies of log states, loaded on first use.

    Validation changes a state in place only when a record is accepted; if the
    batch holding that change then fails to commit, :meth:`clear` drops every
    working copy so the next batch starts again from what the catalog holds.
    """

    def __init__(self, catalog: WargCatalog, operator_log_id: str) -> None:
        self._catalog = catalog
        self._operator_log_id = operator_log_id
        self._packages: dict[str, PackageLogState] = {}
        self._operator: OperatorLogState | None = None

    def package(self, log_id: str) -> PackageLogState:
        state = self._packages.get(log_id)
        if state is None:
            if len(self._packages) >= 100_000:
                self._packages.clear()
            state = load_package_state(self._catalog, log_id)
            self._packages[log_id] = state
        return state

    def operator(self) -> OperatorLogState:
        if self._operator is None:
            self._operator = load_operator_state(self._catalog, self._operator_log_id)
        return self._operator

    def clear(self) -> None:
        self._packages.clear()
        self._operator = None
