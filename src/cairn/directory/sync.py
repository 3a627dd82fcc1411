"""Directory sync: replicate another node's records into this one, continuously or once.

A sync is a catalog row (:class:`~cairn.core.catalog.SyncCatalog`) with a
status machine (specs/directory.md §10, DECISIONS.md directory 11-14)::

    CreateSync -> PENDING -> IN_PROGRESS --pass ok, mirror--> IN_PROGRESS (polls again)
                                |        --pass ok, once---> COMPLETED
                                '--------error-------------> FAILED --retry ok--> IN_PROGRESS | COMPLETED
    any state but DELETED --DeleteSync--> DELETE_PENDING --mirror stopped--> DELETED

:class:`Syncs` owns a scheduler thread and a few worker threads. The scheduler
looks at the rows (so syncs resume after a restart: PENDING, IN_PROGRESS and
FAILED mirrors are picked up again), starts a pass for each sync that is due
and turns DELETE_PENDING into DELETED once no pass of that sync runs. A pass
(:class:`~cairn.directory.replication.Replicator`) first learns where the
remote's registry is: for a Directory node URL through ``negotiate`` (the
remote's ``RequestRegistryCredentials``, injected by the gRPC face), for an
``oci+http(s)://`` URL directly.

Retries: a FAILED mirror is retried by the scheduler with backoff (one poll
interval after the first failure, doubling up to 8 intervals) and becomes
IN_PROGRESS again after a successful pass. A FAILED one-shot sync stays FAILED
until CreateSync is called again with the same URL and mode, which re-arms it
(PENDING, same id); CreateSync does the same for a FAILED mirror, retrying it
at once. Replicated data is never removed by DeleteSync.

Replicas: several ``cairn serve`` processes on one catalog share its syncs
(ARCHITECTURE.md principle 4), and each sync is run by one of them at a time,
the one holding the claim ``directory-sync:<id>`` (:mod:`cairn.core.catalog.claims`).
A scheduler takes the claim of an active sync nobody holds before its first
pass and keeps it between the passes of a mirror (its backoff and poll
schedule are that replica's); it gives the claim up when the sync completes,
fails for good (one-shot), is deleted, and on :meth:`Syncs.stop`. A replica
that dies loses its claims with its catalog session, and another replica's
scheduler adopts its syncs at its next look at the rows; a replica that loses
its catalog connection cancels the passes it can no longer claim. Any replica
may create, list or delete a sync, but only the owner (or, when nobody owns
it, whoever claims it) turns DELETE_PENDING into DELETED, so a deletion takes
effect when the owner next looks (at most :data:`SHARED_TICK_SECONDS`, as it
looks that often when claims are shared).

This module is not for the wire (the gRPC face) or for copying bytes
(:mod:`cairn.directory.replication`).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

from cairn.core.catalog.claims import Claims, LocalClaims
from cairn.core.catalog.syncs import SyncCatalog, SyncRow
from cairn.core.errors import CairnError, InvalidArgumentError, NotFoundError
from cairn.directory.replication import Cancelled, PassProgress, RegistryAccess, Replicator
from cairn.oci.registry import check_repository

__all__ = [
    "DEFAULT_REMOTE_REPOSITORY",
    "MODE_CONTINUOUS",
    "MODE_ONCE",
    "Negotiate",
    "Remote",
    "Sync",
    "SyncStatus",
    "Syncs",
    "claim_name",
    "parse_remote_url",
    "registry_access",
]

log = logging.getLogger(__name__)

#: A mirror: IN_PROGRESS while it polls the remote (the seed's behaviour, the default).
MODE_CONTINUOUS = "continuous"
#: One pass, then COMPLETED (later upstream's behaviour).
MODE_ONCE = "once"
MODES = (MODE_CONTINUOUS, MODE_ONCE)
#: The repository read on a remote registry whose URL names none (upstream's fixed ``dir``).
DEFAULT_REMOTE_REPOSITORY = "dir"
#: URL schemes of a remote that is a plain OCI registry rather than a Directory node.
OCI_SCHEMES = {"oci+http": "http", "oci+https": "https"}
#: A FAILED mirror waits at most this many poll intervals before the next attempt.
MAX_BACKOFF_INTERVALS = 8
#: Passes of different syncs that run at the same time.
SYNC_WORKERS = 4
#: With replicas on one catalog, a scheduler looks at the rows at least this often: syncs created,
#: re-armed or deleted on another replica, and syncs of a replica that died, do not wake it.
SHARED_TICK_SECONDS = 5.0

#: Given a remote Directory node URL, ask it for access to its registry (the gRPC face implements it).
Negotiate = Callable[[str], RegistryAccess]


class SyncStatus(enum.StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    DELETE_PENDING = "DELETE_PENDING"
    DELETED = "DELETED"


_ACTIVE = (SyncStatus.PENDING, SyncStatus.IN_PROGRESS, SyncStatus.FAILED, SyncStatus.DELETE_PENDING)
_NOT_DELETED = tuple(s for s in SyncStatus if s is not SyncStatus.DELETED)


def claim_name(sync_id: str) -> str:
    """The claim held by the replica that runs sync ``sync_id``."""
    return f"directory-sync:{sync_id}"


def _finished(row: SyncRow) -> bool:
    """A FAILED one-shot sync: nothing runs it until CreateSync re-arms it (on any replica)."""
    return row.status == SyncStatus.FAILED and row.mode == MODE_ONCE


@dataclass(frozen=True, slots=True)
class Remote:
    """A parsed remote URL: a Directory node's gRPC address, or an OCI registry repository."""

    url: str
    #: ``directory`` (negotiate over gRPC) or ``oci`` (read the registry directly).
    kind: str
    #: gRPC target ``host:port`` (directory) or registry base URL ``scheme://host:port`` (oci).
    address: str
    tls: bool
    repository: str = DEFAULT_REMOTE_REPOSITORY


@dataclass(frozen=True, slots=True)
class Sync:
    id: str
    remote_url: str
    mode: str
    status: SyncStatus
    reason: str
    registry_url: str
    copied: int
    created_at: datetime
    updated_at: datetime


def _invalid(url: str, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"invalid remote directory URL: {url!r}: {why}")


def parse_remote_url(url: str) -> Remote:
    """Validate a CreateSync URL (specs/directory.md §10.1 step 1, plus ``oci+`` schemes).

    ``host:port`` and ``http(s)://host[:port]`` name a Directory node's gRPC
    endpoint (port 80/443 by default with a scheme); ``oci+http(s)://host[:port][/repository]``
    names an OCI registry whose repository (default ``dir``) holds records.
    InvalidArgumentError ``invalid remote directory URL: ...`` otherwise.
    """
    text = url.strip()
    if not text:
        raise InvalidArgumentError("invalid remote directory URL: it is empty")
    if "://" not in text:
        if ":" not in text:
            raise _invalid(text, "expected host:port or http(s)://host[:port]")
        parts = urlsplit("//" + text)
        scheme = ""
    else:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", *OCI_SCHEMES):
            raise _invalid(text, f"scheme {parts.scheme!r} is not http, https, oci+http or oci+https")
    try:
        port = parts.port
    except ValueError:
        raise _invalid(text, "the port is not a number from 0 to 65535") from None
    host = parts.hostname
    if not host:
        raise _invalid(text, "a hostname is required")
    if parts.query or parts.fragment or parts.username is not None:
        raise _invalid(text, "credentials, query and fragment are not allowed")
    netloc = f"[{host}]" if ":" in host else host
    tls = scheme in ("https", "oci+https")
    path = parts.path.strip("/")
    if scheme in OCI_SCHEMES:
        repository = DEFAULT_REMOTE_REPOSITORY
        if path:
            try:
                repository = check_repository(path)
            except InvalidArgumentError as exc:
                raise _invalid(text, exc.message) from None
        address = f"{OCI_SCHEMES[scheme]}://{netloc}" + (f":{port}" if port is not None else "")
        return Remote(text, "oci", address, tls, repository)
    if path:
        raise _invalid(text, "a Directory node URL has no path")
    if port is None:
        if not scheme:
            raise _invalid(text, "a port is required")
        port = 443 if tls else 80
    return Remote(text, "directory", f"{netloc}:{port}", tls)


def registry_access(registry_url: str, username: str | None = None, password: str | None = None) -> RegistryAccess:
    """Access to a registry named as a remote node answered it: ``host:port`` or a URL, maybe with a path.

    A bare ``host:port`` is read over plain http (as the seed's mirror did); a
    path names the repository (default ``dir``).
    """
    text = registry_url.strip()
    if not text:
        raise InvalidArgumentError("the remote answered an empty registry URL")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(f"the remote answered an unusable registry URL {registry_url!r}")
    path = parts.path.strip("/")
    repository = check_repository(path) if path else DEFAULT_REMOTE_REPOSITORY
    return RegistryAccess(f"{parts.scheme}://{parts.netloc}", username or None, password or None, repository)


def _time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _sync(row: SyncRow) -> Sync:
    return Sync(
        row.id, row.remote_url, row.mode, SyncStatus(row.status), row.reason, row.registry_url,
        row.copied, _time(row.created_at), _time(row.updated_at),
    )


class _Run:
    """A pass in flight: its cancel flag."""

    def __init__(self) -> None:
        self.cancel = threading.Event()


class Syncs:
    """The syncs of this node: create, list, get, delete, and the background passes.

    :meth:`start` begins the scheduler; :meth:`stop` cancels running passes and
    waits for them. Every method blocks on the catalog; thread-safe. ``claims``
    are the catalog's (shared with other replicas); None for a node alone on its
    catalog.
    """

    def __init__(
        self,
        catalog: SyncCatalog,
        replicator: Replicator,
        negotiate: Negotiate,
        *,
        poll_seconds: float = 30.0,
        workers: int = SYNC_WORKERS,
        claims: Claims | None = None,
    ) -> None:
        self._catalog = catalog
        self._replicator = replicator
        self._negotiate = negotiate
        self.poll_seconds = poll_seconds
        self._workers = workers
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._running: dict[str, _Run] = {}
        self._due: dict[str, float] = {}  # monotonic time of a sync's next pass (absent: now)
        self._failures: dict[str, int] = {}
        self._claims: Claims = LocalClaims() if claims is None else claims
        self._owned: set[str] = set()  # syncs whose claim this scheduler holds
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    # -- the API ---------------------------------------------------------------------
    def create(self, remote_url: str, mode: str = MODE_CONTINUOUS) -> Sync:
        """A new PENDING sync of ``remote_url`` (validated), or a FAILED one of the same URL and
        mode re-armed (PENDING again, same id). Returns at once; the scheduler starts the pass."""
        if mode not in MODES:
            raise InvalidArgumentError(f"sync mode {mode!r} is not one of {', '.join(MODES)}")
        remote = parse_remote_url(remote_url)
        now = time.time_ns()
        failed = self._catalog.find(remote.url, mode, (SyncStatus.FAILED,))
        if failed is not None and self._catalog.transition(
            failed.id, SyncStatus.PENDING, (SyncStatus.FAILED,), now, reason=""
        ):
            with self._lock:
                self._due.pop(failed.id, None)
                self._failures.pop(failed.id, None)
            log.info("sync %s of %s re-armed after failure", failed.id, remote.url)
            self._wake.set()
            return self.get(failed.id)
        row = SyncRow(str(uuid.uuid4()), remote.url, mode, SyncStatus.PENDING, "", "", 0, now, now)
        self._catalog.insert(row)
        log.info("sync %s created: %s from %s", row.id, mode, remote.url)
        self._wake.set()
        return _sync(row)

    def get(self, sync_id: str) -> Sync:
        """The sync; NotFoundError for an unknown id."""
        row = self._catalog.get(sync_id)
        if row is None:
            raise NotFoundError(f"sync {sync_id} not found")
        return _sync(row)

    def list_syncs(self, limit: int | None = None, offset: int = 0) -> list[Sync]:
        """Every sync (deleted ones too), oldest first, after ``offset``, at most ``limit``."""
        return [_sync(row) for row in self._catalog.list_syncs(offset, limit)]

    def delete(self, sync_id: str) -> None:
        """Mark the sync DELETE_PENDING; the scheduler stops its passes and marks it DELETED.

        NotFoundError for an unknown id and for a sync already DELETED. Data
        copied so far stays.
        """
        if not self._catalog.transition(sync_id, SyncStatus.DELETE_PENDING, _NOT_DELETED, time.time_ns()):
            row = self._catalog.get(sync_id)
            if row is None:
                raise NotFoundError(f"sync {sync_id} not found")
            raise NotFoundError("sync has already been deleted")
        with self._lock:
            run = self._running.get(sync_id)
        if run is not None:
            run.cancel.set()
        log.info("sync %s: deletion requested", sync_id)
        self._wake.set()

    # -- lifetime ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the scheduler (idempotent)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="sync-pass")
        self._thread = threading.Thread(target=self._loop, name="sync-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel running passes and stop the scheduler; waits up to ``timeout`` seconds."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        with self._lock:
            for run in self._running.values():
                run.cancel.set()
        self._wake.set()
        thread.join(timeout)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with self._lock:
                    if not self._running:
                        break
                time.sleep(0.02)
        # Hand the syncs on to the other replicas (a pass that outlived the wait keeps its claim).
        with self._lock:
            idle = [sync_id for sync_id in self._owned if sync_id not in self._running]
        for sync_id in idle:
            self._disown(sync_id)

    # -- the scheduler ------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                wait = self._tick()
            except Exception:  # a busy catalog must not end the scheduler; try again soon
                log.exception("sync scheduler: could not read the syncs")
                wait = min(self.poll_seconds, 5.0)
            self._wake.wait(wait)
            self._wake.clear()

    def _tick(self) -> float:
        """Start what is due; returns seconds until something is due again."""
        now = time.monotonic()
        wait = min(self.poll_seconds, SHARED_TICK_SECONDS) if self._claims.shared else self.poll_seconds
        rows = self._catalog.in_states(_ACTIVE)
        for listed in rows:
            row = listed
            with self._lock:
                run = self._running.get(row.id)
            if run is not None:
                if row.status == SyncStatus.DELETE_PENDING:
                    run.cancel.set()  # DELETED once the pass has ended (it wakes us)
                elif not self._claims.holding(claim_name(row.id)):
                    log.warning("sync %s: claim lost with the catalog connection; stopping its pass", row.id)
                    run.cancel.set()
                continue
            if _finished(row):
                self._disown(row.id)
                continue
            owned = self._own(row.id)
            if owned is None:
                continue  # another replica runs it
            if owned == "taken":
                # The row was read before the claim: the previous owner may have changed it since.
                latest = self._catalog.get(row.id)
                if latest is None or latest.status not in _ACTIVE or _finished(latest):
                    self._disown(row.id)
                    continue
                row = latest
            if row.status == SyncStatus.DELETE_PENDING:
                if self._catalog.transition(row.id, SyncStatus.DELETED, (SyncStatus.DELETE_PENDING,), time.time_ns()):
                    log.info("sync %s deleted; its mirror of %s stopped (copied data kept)", row.id, row.remote_url)
                self._disown(row.id)
                continue
            with self._lock:
                # PENDING: created or re-armed (maybe on another replica): due at once
                due = 0.0 if row.status == SyncStatus.PENDING else self._due.get(row.id, 0.0)
            if due > now:
                wait = min(wait, due - now)
                continue
            if row.status == SyncStatus.PENDING and not self._catalog.transition(
                row.id, SyncStatus.IN_PROGRESS, (SyncStatus.PENDING,), time.time_ns()
            ):
                continue
            self._submit(row)
        active = {row.id for row in rows}
        with self._lock:  # syncs gone from the active states meanwhile (completed, deleted)
            gone = [sync_id for sync_id in self._owned if sync_id not in active and sync_id not in self._running]
        for sync_id in gone:
            self._disown(sync_id)
        return max(wait, 0.01)

    def _own(self, sync_id: str) -> Literal["kept", "taken"] | None:
        """Whether this replica runs the sync: it holds the sync's claim (``kept``), takes it now
        (``taken``), or another replica holds it (None)."""
        name = claim_name(sync_id)
        with self._lock:
            owned = sync_id in self._owned
        if owned:
            if self._claims.holding(name):
                return "kept"
            log.warning("sync %s: claim lost with the catalog connection; another replica may adopt it", sync_id)
            self._forget_owned(sync_id)
        if not self._claims.try_claim(name):
            return None
        with self._lock:
            self._owned.add(sync_id)
        if self._claims.shared:
            log.info("sync %s: run by this replica", sync_id)
        return "taken"

    def _disown(self, sync_id: str) -> None:
        """Give the sync's claim up, so that any replica may run (or delete) it next."""
        with self._lock:
            owned = sync_id in self._owned
        if owned:
            self._forget_owned(sync_id)
            self._claims.release(claim_name(sync_id))

    def _forget_owned(self, sync_id: str) -> None:
        with self._lock:
            self._owned.discard(sync_id)
            self._due.pop(sync_id, None)
            self._failures.pop(sync_id, None)

    def _submit(self, row: SyncRow) -> None:
        pool = self._pool
        if pool is None or self._stopping.is_set():
            return
        run = _Run()
        with self._lock:
            self._running[row.id] = run
        try:
            future = pool.submit(self._pass, row, run)
        except RuntimeError:  # the pool is shutting down
            self._forget(row.id, run)
            return
        future.add_done_callback(lambda f: self._forget(row.id, run) if f.cancelled() else None)

    def _forget(self, sync_id: str, run: _Run) -> None:
        with self._lock:
            if self._running.get(sync_id) is run:
                del self._running[sync_id]
        self._wake.set()

    # -- one pass -----------------------------------------------------------------------
    def _pass(self, row: SyncRow, run: _Run) -> None:
        name = f"sync {row.id}"
        progress = PassProgress()
        registry_url = ""
        context = ""  # negotiation errors name the remote themselves
        try:
            remote = parse_remote_url(row.remote_url)
            if remote.kind == "oci":
                access = RegistryAccess(remote.address, repository=remote.repository)
            else:
                access = self._negotiate(remote.url)
            registry_url = access.url
            if access.repository != DEFAULT_REMOTE_REPOSITORY:
                registry_url += "/" + access.repository
            context = f"copying from registry {registry_url} of {remote.url}: "
            self._replicator.run(access, progress, run.cancel.is_set, name)
        except Cancelled:
            self._ended(row, run, None, progress, registry_url)
        except CairnError as exc:
            self._ended(row, run, context + exc.message, progress, registry_url)
        except Exception as exc:
            log.exception("%s: internal error", name)
            self._ended(row, run, f"{context}internal error: {exc!r}", progress, registry_url)
        else:
            self._ended(row, run, "", progress, registry_url)

    def _ended(self, row: SyncRow, run: _Run, failure: str | None, progress: PassProgress, registry_url: str) -> None:
        """Record a pass's outcome (None: cancelled) and schedule the next one."""
        now_ns = time.time_ns()
        try:
            if failure is None:
                self._catalog.add_copied(row.id, progress.copied)
            elif failure:
                with self._lock:
                    failures = self._failures[row.id] = self._failures.get(row.id, 0) + 1
                    delay = self.poll_seconds * min(2 ** (failures - 1), MAX_BACKOFF_INTERVALS)
                    self._due[row.id] = time.monotonic() + delay
                reason = failure
                if self._catalog.transition(
                    row.id, SyncStatus.FAILED, (SyncStatus.IN_PROGRESS, SyncStatus.FAILED), now_ns,
                    reason=reason, copied=progress.copied,
                ):
                    retry = f"; retrying in {delay:.0f}s" if row.mode == MODE_CONTINUOUS else ""
                    log.warning("sync %s failed (attempt %d): %s%s", row.id, failures, reason, retry)
            else:
                status = SyncStatus.IN_PROGRESS if row.mode == MODE_CONTINUOUS else SyncStatus.COMPLETED
                with self._lock:
                    self._failures.pop(row.id, None)
                    self._due[row.id] = time.monotonic() + self.poll_seconds
                changed = self._catalog.transition(
                    row.id, status, (SyncStatus.IN_PROGRESS, SyncStatus.FAILED), now_ns,
                    reason="", registry_url=registry_url, copied=progress.copied,
                )
                if changed and (progress.copied or row.status != status):
                    log.info(
                        "sync %s: %s, %d copied, %d of %d remote tags already here",
                        row.id, status.value, progress.copied, progress.present, progress.remote_tags,
                    )
        except Exception:
            log.exception("sync %s: could not record the pass's outcome", row.id)
        finally:
            self._forget(row.id, run)
            if failure is not None and row.mode == MODE_ONCE:
                self._disown(row.id)  # COMPLETED or FAILED: nothing more to run
