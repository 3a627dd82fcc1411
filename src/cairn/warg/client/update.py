"""Fetch what is new at a registry and verify all of it before believing any of it.

:meth:`Updater.update` brings a :class:`~cairn.warg.client.state.ClientState`
(the working copy the caller loaded) up to the registry's latest checkpoint, in
the order of the reference client (specs/warg.md §8.8): checkpoint, records
(incrementally: every log from its fetch token, page by page while ``more``),
validation of every record, the checkpoint's signature, inclusion of every head,
consistency with the checkpoint verified before. The checks themselves are in
``verify.py``.

It mutates only the working copy; if anything fails the caller simply does not
save it, and the stored state stays as it was. Every package the state already
tracks is updated along with the ones asked for: a new checkpoint is only
believed once every tracked head is proven under it, so no tracked package can
be left at an older checkpoint than the one stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cairn.core.errors import NotFoundError
from cairn.warg.checkpoint import SignedCheckpoint
from cairn.warg.client.errors import MalformedResponseError, VerificationError, WargNotFoundError
from cairn.warg.client.model import FetchLogsResult
from cairn.warg.client.state import ClientState, PackageTrack
from cairn.warg.client.verify import (
    Leaf,
    apply_records,
    check_checkpoint_signature,
    check_consistency,
    check_inclusion,
    check_progress,
)
from cairn.warg.ids import OPERATOR_LOG_ID, PackageName

__all__ = ["UpdateApi", "UpdateReport", "Updater"]


class UpdateApi(Protocol):
    """The four calls an update needs (``WargApi`` has them; tests pass fakes)."""

    registry: str

    def fetch_checkpoint(self) -> SignedCheckpoint: ...

    def fetch_logs(
        self,
        log_length: int,
        operator: str | None = None,
        packages: Mapping[str, str | None] | None = None,
        limit: int | None = None,
    ) -> FetchLogsResult: ...

    def prove_inclusion(self, log_length: int, leafs: Sequence[int]) -> tuple[bytes, bytes]: ...

    def prove_consistency(self, old_length: int, new_length: int) -> bytes: ...


@dataclass
class UpdateReport:
    """What an update did: the checkpoint now verified, the one before, new records per log."""

    checkpoint: SignedCheckpoint
    previous_length: int | None
    new_records: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Updater:
    """Runs updates against one registry through ``api``; ``page_limit`` is fetch/logs' ``limit``."""

    def __init__(self, api: UpdateApi, *, page_limit: int | None = None) -> None:
        self.api = api
        self.page_limit = page_limit

    def update(
        self, state: ClientState, names: Iterable[PackageName] = (), *, missing_ok: bool = False
    ) -> UpdateReport:
        """Verify the registry's latest checkpoint into ``state``, tracking ``names`` too.

        A package the registry does not know raises NotFoundError, or with
        ``missing_ok`` is listed in the report's ``missing`` and not tracked
        (``publish init`` uses that). Anything that does not verify raises
        VerificationError; ``state`` is then half updated and must be dropped.
        """
        for name in names:
            if str(name) not in state.packages:
                state.packages[str(name)] = PackageTrack(name)
        checkpoint = self.api.fetch_checkpoint()
        previous = state.checkpoint
        check_progress(previous, checkpoint)
        length = checkpoint.contents.log_length
        report = UpdateReport(checkpoint, None if previous is None else previous.contents.log_length)
        self._fetch(state, length, report, missing_ok)
        leaves = self._leaves(state, length, report, missing_ok)
        check_checkpoint_signature(checkpoint, state.operator.state)
        log_bundle, map_bundle = self.api.prove_inclusion(length, [leaf.registry_index for leaf in leaves])
        check_inclusion(checkpoint, leaves, log_bundle, map_bundle)
        if previous is not None and length > previous.contents.log_length:
            bundle = self.api.prove_consistency(previous.contents.log_length, length)
            check_consistency(previous, checkpoint, bundle)
        state.checkpoint = checkpoint
        return report

    # -- records ---------------------------------------------------------------
    def _fetch(self, state: ClientState, length: int, report: UpdateReport, missing_ok: bool) -> None:
        """Fetch and validate every log's new records up to ``length``, page by page."""
        seen: set[int] = set()
        while True:
            by_log_id = {str(track.log_id): track for track in state.packages.values()}
            try:
                page = self.api.fetch_logs(
                    length,
                    state.operator.fetch_token,
                    {log_id: track.fetch_token for log_id, track in by_log_id.items()},
                    self.page_limit,
                )
            except WargNotFoundError as exc:
                self._not_found(state, exc, by_log_id, report, missing_ok)
                continue  # the package is dropped from the state; ask again without it
            report.warnings.extend(page.warnings)
            count = apply_records(
                "the operator log", state.operator.state, state.operator, page.operator, length, seen
            )
            report.new_records["operator"] = report.new_records.get("operator", 0) + count
            received = len(page.operator)
            for log_id, records in page.packages.items():
                track = by_log_id.get(log_id)
                if track is None:
                    raise MalformedResponseError(
                        f"fetch logs: the registry sent records of log {log_id}, which was not asked for"
                    )
                count = apply_records(f"package {track.name}", track.state, track, records, length, seen)
                report.new_records[str(track.name)] = report.new_records.get(str(track.name), 0) + count
                received += len(records)
            if not page.more:
                return
            if not received:
                raise MalformedResponseError("fetch logs: the registry says there is more but sent nothing")

    def _not_found(
        self,
        state: ClientState,
        exc: WargNotFoundError,
        by_log_id: dict[str, PackageTrack],
        report: UpdateReport,
        missing_ok: bool,
    ) -> None:
        """Turn a 404 of fetch/logs into a dropped new package or a clear error."""
        track = by_log_id.get(str(exc.id)) if exc.type == "log" else None
        if track is not None and track.head_index is None:
            if not missing_ok:
                raise NotFoundError(f"package {track.name} does not exist at {self.api.registry}") from None
            del state.packages[str(track.name)]
            report.missing.append(str(track.name))
            return
        if track is not None:
            raise VerificationError(
                f"package {track.name}: the registry no longer knows its log, which this client verified "
                f"up to record {track.fetch_token}"
            ) from None
        if exc.type == "fetchToken":
            raise VerificationError(
                f"the registry does not know record {exc.id}, which this client verified before: its "
                "history is not the one this client knows"
            ) from None
        raise exc

    def _leaves(self, state: ClientState, length: int, report: UpdateReport, missing_ok: bool) -> list[Leaf]:
        """The heads to prove: the operator log's, then each package's (all must exist)."""
        operator = state.operator
        if operator.state.head is None or operator.head_index is None:
            raise VerificationError(f"the registry's operator log is empty at log length {length}")
        leaves = [
            Leaf("the operator log", OPERATOR_LOG_ID, operator.state.head.record_id, operator.head_index)
        ]
        for name, track in list(state.packages.items()):
            if track.state.head is None or track.head_index is None:
                if missing_ok:  # the log exists but none of its records is in a checkpoint yet
                    del state.packages[name]
                    report.missing.append(name)
                    continue
                raise NotFoundError(
                    f"package {name} has no records at the registry's log length {length}"
                    + (" (its first record may still be processing)" if track.fetch_token is None else "")
                )
            leaves.append(Leaf(f"package {name}", track.log_id, track.state.head.record_id, track.head_index))
        return leaves
