"""``WargClient``: the client's operations in one small object, for the CLI and for Python callers.

Each method is one user-level operation (update, publish init/release/yank/
grant/revoke, download, info) and only wires the modules that do the work:
``api.py`` talks, ``update.py`` verifies, ``publish.py`` sends records,
``download.py`` fetches content, ``state.py`` remembers. It adds the two rules
that span them: every operation that changes the stored state holds the state
directory's lock from load to save, and a publish always starts from a freshly
verified head and ends by verifying the record it published.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from cairn.core.errors import (
    AlreadyExistsError,
    CairnError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from cairn.warg.client.api import CHUNK_SIZE, WargApi
from cairn.warg.client.download import Downloaded, fetch_content, find_release, save_content
from cairn.warg.client.publish import Publisher, build_record, sign_record
from cairn.warg.client.state import ClientState, PackageTrack, StateStore, default_state_root
from cairn.warg.client.update import Updater, UpdateReport
from cairn.warg.crypto import PrivateKey, PublicKey
from cairn.warg.hashes import SHA256, AnyHash
from cairn.warg.ids import PackageName
from cairn.warg.records import (
    PackageEntry,
    PackageGrantFlat,
    PackageInit,
    PackagePermission,
    PackageRelease,
    PackageRevokeFlat,
    PackageYank,
)
from cairn.warg.semver import Version

__all__ = ["PublishResult", "WargClient"]


@dataclass(frozen=True, slots=True)
class PublishResult:
    """A record the registry published: which package, its record id and registry index."""

    name: str
    record_id: str
    registry_index: int | None


class WargClient:
    """A verifying client of one Warg registry, remembering what it verified in ``state_dir``.

    ``state_dir`` is the state root (one sub-directory per registry URL; None:
    the user's cache directory). ``key`` signs what is published (None: this
    client only reads). ``insecure`` allows plain http to hosts other than
    loopback. ``timeout`` bounds each HTTP call, ``publish_timeout`` the wait
    for a published record. Every method raises only CairnError kinds.
    """

    def __init__(
        self,
        registry_url: str,
        state_dir: Path | str | None = None,
        key: PrivateKey | None = None,
        *,
        insecure: bool = False,
        timeout: float = 30.0,
        publish_timeout: float = 60.0,
        page_limit: int | None = None,
    ) -> None:
        self.api = WargApi(registry_url, insecure=insecure, timeout=timeout)
        self.registry = self.api.registry
        self.store = StateStore(
            Path(state_dir) if state_dir is not None else default_state_root(), self.registry
        )
        self.key = key
        self.updater = Updater(self.api, page_limit=page_limit)
        self.publisher = Publisher(self.api, timeout=publish_timeout)

    # -- reading -----------------------------------------------------------------
    def update(self, packages: Iterable[str] = ()) -> UpdateReport:
        """Fetch and verify the latest checkpoint, tracking ``packages`` besides those already tracked."""
        names = [_name(text) for text in packages]
        with self.store.locked():
            state = self.store.load()
            report = self.updater.update(state, names)
            self.store.save(state)
        return report

    def info(self) -> ClientState:
        """What this client verified last (no network)."""
        with self.store.locked():
            return self.store.load()

    def package(self, name: str) -> PackageTrack:
        """The verified state of one tracked package (no network); NotFoundError if untracked."""
        track = self.info().packages.get(str(_name(name)))
        if track is None:
            raise NotFoundError(
                f"package {name} is not known here yet; `cairn warg update {name}` fetches it"
            )
        return track

    def download(
        self,
        name: str,
        version: str,
        dest: Path | BinaryIO,
        *,
        allow_yanked: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> Downloaded:
        """Update ``name``, then download ``version`` to a path or an open binary stream, verified.

        A path appears only once its bytes are verified; a stream gets the bytes
        only once they are verified (they are spooled to a temporary file first).
        """
        package = _name(name)
        self.update([str(package)])
        track = self.package(str(package))
        release = find_release(track, version, allow_yanked=allow_yanked)
        assert release.content is not None  # find_release refuses a release without content
        if isinstance(dest, Path):
            size = save_content(self.api, release.content, dest, progress)
            return Downloaded(str(package), str(release.version), str(release.content), size, dest)
        with tempfile.TemporaryFile() as spool:
            size = fetch_content(self.api, release.content, spool, progress)
            spool.seek(0)
            shutil.copyfileobj(spool, dest, CHUNK_SIZE)
        return Downloaded(str(package), str(release.version), str(release.content), size, None)

    # -- publishing -----------------------------------------------------------------
    def publish_init(self, name: str) -> PublishResult:
        """Start the package's log: ``init`` with this client's key (which gets release and yank)."""
        key = self._signing_key()
        return self._publish(_name(name), [PackageInit(key.public_key, SHA256)], init=True)

    def publish_release(self, name: str, version: str, path: Path | str) -> PublishResult:
        """Release ``version`` with the file at ``path`` as its content (uploaded if the registry lacks it)."""
        file = Path(path)
        digest = _file_digest(file)
        entry = PackageRelease(_version(version), digest)
        return self._publish(_name(name), [entry], contents={str(digest): file})

    def yank(self, name: str, version: str) -> PublishResult:
        """Yank a released version."""
        return self._publish(_name(name), [PackageYank(_version(version))])

    def grant(
        self,
        name: str,
        public_key: PublicKey | str,
        permissions: Iterable[PackagePermission | str] = (PackagePermission.RELEASE,),
    ) -> PublishResult:
        """Give ``public_key`` the ``permissions`` on the package (the signer must hold them)."""
        key = public_key if isinstance(public_key, PublicKey) else _public_key(public_key)
        return self._publish(_name(name), [PackageGrantFlat(key, _permissions(permissions))])

    def revoke(
        self,
        name: str,
        key_id: PublicKey | str,
        permissions: Iterable[PackagePermission | str] = (PackagePermission.RELEASE,),
    ) -> PublishResult:
        """Take ``permissions`` on the package away from a key (given by key id or public key)."""
        ident = AnyHash.parse32(key_id.key_id if isinstance(key_id, PublicKey) else _key_id(key_id))
        return self._publish(_name(name), [PackageRevokeFlat(ident, _permissions(permissions))])

    def _publish(
        self,
        name: PackageName,
        entries: list[PackageEntry],
        *,
        init: bool = False,
        contents: dict[str, Path] | None = None,
    ) -> PublishResult:
        key = self._signing_key()
        with self.store.locked():
            state = self.store.load()
            self.updater.update(state, [name], missing_ok=True)
            self.store.save(state)  # what was verified is kept even if the publish fails
            track = state.packages.get(str(name))
            if init and track is not None:
                raise AlreadyExistsError(f"package {name} exists already at {self.registry}")
            if not init and track is None:
                raise NotFoundError(
                    f"package {name} does not exist at {self.registry}; "
                    f"`cairn warg publish init {name}` starts it"
                )
            record = build_record(None if track is None else track.state.head, entries)
            status = self.publisher.submit(name, sign_record(record, key), contents or {})
            self.updater.update(state, [name])  # verify the published record like any other
            self.store.save(state)
        return PublishResult(str(name), status.record_id, status.registry_index)

    def _signing_key(self) -> PrivateKey:
        if self.key is None:
            raise FailedPreconditionError("publishing needs a signing key (`cairn warg key new` makes one)")
        return self.key

    # -- lifetime -------------------------------------------------------------------
    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- argument parsing ----------------------------------------------------------------
def _name(text: str) -> PackageName:
    return PackageName.parse(text)


def _version(text: str) -> Version:
    return Version.parse(text)


def _public_key(text: str) -> PublicKey:
    return PublicKey.parse(text.strip())


def _key_id(text: str) -> str:
    """A key id as given, or the id of a public key given instead (``ecdsa-p256:...``)."""
    text = text.strip()
    return _public_key(text).key_id if text.startswith("ecdsa-p256:") else text


def _permissions(values: Iterable[PackagePermission | str]) -> tuple[PackagePermission, ...]:
    out: list[PackagePermission] = []
    for value in values:
        try:
            permission = PackagePermission(value)
        except ValueError:
            raise InvalidArgumentError(f"unknown package permission {value!r} (release or yank)") from None
        if permission not in out:
            out.append(permission)
    if not out:
        raise InvalidArgumentError("give at least one permission (release or yank)")
    return tuple(out)


def _file_digest(path: Path) -> AnyHash:
    """The sha256 digest of a file, read in chunks (a release may be large)."""
    hasher = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while chunk := file.read(CHUNK_SIZE):
                hasher.update(chunk)
    except OSError as exc:
        raise CairnError(f"cannot read {path}: {exc.strerror or exc}") from None
    return AnyHash(SHA256, hasher.digest())
