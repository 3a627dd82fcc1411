"""Package and operator log validation (specs/warg.md section 5).

``validate`` runs the spec's checks in the spec's order so that the first
failure produces exactly the reference's message (peers and tests compare the
text). It is transactional: entries are applied to a small overlay
(``_Txn``) that is merged into the state only once every check, including the
signature, has passed. That keeps a failed record from leaving half its entries
behind, without copying the whole state (a package may have many releases).

``to_json``/``from_json`` use the reference ``LogState`` JSON shape (the
vectors' ``output/*.json``); ``summary_json``/``from_parts`` split a package
state so a store can keep releases as rows and the rest as one small document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from cairn.warg.crypto import OPERATOR_RECORD_PREFIX, PACKAGE_RECORD_PREFIX, PublicKey
from cairn.warg.errors import ValidationError, WargFormatError
from cairn.warg.hashes import SHA256, AnyHash
from cairn.warg.ids import is_kebab, operator_record_id, package_record_id
from cairn.warg.records import (
    Envelope,
    OperatorDefineNamespace,
    OperatorGrantFlat,
    OperatorImportNamespace,
    OperatorInit,
    OperatorPermission,
    OperatorRecord,
    OperatorRevokeFlat,
    PackageGrantFlat,
    PackageInit,
    PackagePermission,
    PackageRecord,
    PackageRelease,
    PackageRevokeFlat,
    PackageYank,
    RecordTime,
)
from cairn.warg.semver import Version

__all__ = ["Head", "NamespaceState", "OperatorLogState", "PackageLogState", "Release"]

_P = TypeVar("_P", PackagePermission, OperatorPermission)


# ---- state values --------------------------------------------------------------------------------


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WargFormatError(f"{what} must be a JSON object")
    return value


def _text(obj: Mapping[str, Any], name: str) -> str:
    value: object = obj.get(name)
    if not isinstance(value, str):
        raise WargFormatError(f"log state field `{name}` must be a string")
    return value


@dataclass(frozen=True, slots=True)
class Head:
    """The last validated record of a log: its id and timestamp."""

    record_id: AnyHash
    timestamp: RecordTime

    def to_json(self) -> dict[str, str]:
        return {"digest": str(self.record_id), "timestamp": self.timestamp.text}

    @classmethod
    def from_json(cls, obj: object) -> Head:
        body = _obj(obj, "head")
        return cls(AnyHash.parse(_text(body, "digest")), RecordTime.from_text(_text(body, "timestamp")))


@dataclass(frozen=True, slots=True)
class Release:
    """One released version; ``yanked_by``/``yanked_at`` are set once it is yanked.

    ``content`` is kept after a yank (the reference drops it); it is ``None``
    only for a yanked release restored from reference-shaped JSON.
    """

    record_id: AnyHash
    version: Version
    by: str
    timestamp: RecordTime
    content: AnyHash | None
    yanked_by: str | None = None
    yanked_at: RecordTime | None = None

    @property
    def yanked(self) -> bool:
        return self.yanked_by is not None

    def to_json(self, *, keep_content: bool = False) -> dict[str, Any]:
        """The reference shape; ``keep_content`` also writes ``content`` into a yanked state."""
        state: dict[str, Any]
        if self.yanked_by is None or self.yanked_at is None:
            state = {"status": "released", "content": str(self.content)}
        else:
            state = {"status": "yanked", "by": self.yanked_by, "timestamp": self.yanked_at.text}
            if keep_content and self.content is not None:
                state["content"] = str(self.content)
        return {
            "recordId": str(self.record_id),
            "version": str(self.version),
            "by": self.by,
            "timestamp": self.timestamp.text,
            "state": state,
        }

    @classmethod
    def from_json(cls, obj: object) -> Release:
        body = _obj(obj, "release")
        state = _obj(body.get("state"), "release state")
        status = state.get("status")
        content = AnyHash.parse(_text(state, "content")) if "content" in state else None
        yanked_by: str | None = None
        yanked_at: RecordTime | None = None
        if status == "yanked":
            yanked_by = _text(state, "by")
            yanked_at = RecordTime.from_text(_text(state, "timestamp"))
        elif status != "released" or content is None:
            raise WargFormatError("release state must be `released` with content or `yanked`")
        return cls(
            AnyHash.parse(_text(body, "recordId")),
            Version.parse(_text(body, "version")),
            _text(body, "by"),
            RecordTime.from_text(_text(body, "timestamp")),
            content,
            yanked_by,
            yanked_at,
        )


@dataclass(frozen=True, slots=True)
class NamespaceState:
    """A namespace of the operator log: defined here (``imported_from`` None) or imported."""

    imported_from: str | None = None

    def to_json(self) -> object:
        if self.imported_from is None:
            return "defined"
        return {"imported": {"registry": self.imported_from}}

    @classmethod
    def from_json(cls, obj: object) -> NamespaceState:
        if obj == "defined":
            return cls(None)
        imported = _obj(_obj(obj, "namespace").get("imported"), "imported namespace")
        return cls(_text(imported, "registry"))


# ---- shared machinery ----------------------------------------------------------------------------


def _fail(message: str) -> ValidationError:
    return ValidationError(message)


class _LogState(Generic[_P]):
    """What both logs share: algorithm, head, keys and permissions, and the record-level checks."""

    _log_kind = "log"
    _all_permissions: tuple[_P, ...]

    def __init__(self) -> None:
        self.algorithm: str | None = None
        self.head: Head | None = None
        self.keys: dict[str, PublicKey] = {}
        self.permissions: dict[str, set[_P]] = {}

    @property
    def initialized(self) -> bool:
        return self.algorithm is not None

    def public_key(self, key_id: str) -> PublicKey | None:
        return self.keys.get(key_id)

    def has_permission(self, key_id: str, permission: _P) -> bool:
        return permission in self.permissions.get(key_id, ())

    def _check_header(self, prev: AnyHash | None, version: int, when: RecordTime) -> None:
        """Steps 1-3: the prev chain, the protocol version, the timestamp."""
        head = self.head
        if head is None:
            if prev is not None:
                raise _fail("the first record contained a previous hash value")
        else:
            if prev is None:
                raise _fail("non-initial record contained no previous hash")
            expected = head.record_id
            if prev.algorithm != expected.algorithm:
                raise _fail(f"record hash uses {prev.algorithm} algorithm but {expected.algorithm} was expected")
            if prev != expected:
                raise _fail("previous record hash does not match")
        if version != 0:
            raise _fail(f"protocol version {version} not allowed")
        if head is not None and when < head.timestamp:
            raise _fail("record has lower timestamp than previous")

    def _check_signer(self, txn: _Txn[_P], envelope: Envelope, prefix: bytes, signature_checked: bool) -> None:
        """Steps 5-7: initialised, the signer is a known key, the signature verifies."""
        if txn.algorithm is None:
            raise _fail('the initial record is empty and does not "init"')
        key = txn.key(envelope.key_id)
        if key is None:
            raise _fail(f"the Key ID used to sign this envelope is not known to this {self._log_kind} log")
        if not signature_checked and not key.verify(prefix, envelope.content_bytes, envelope.signature):
            raise _fail("unable to verify signature")

    def _permissions_json(self) -> dict[str, list[str]]:
        order = self._all_permissions
        return {key_id: [str(p) for p in order if p in held] for key_id, held in self.permissions.items()}

    def _base_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.algorithm is not None:
            out["algorithm"] = self.algorithm
        if self.head is not None:
            out["head"] = self.head.to_json()
        if self.permissions:
            out["permissions"] = self._permissions_json()
        return out

    def _keys_json(self) -> dict[str, str]:
        return {key_id: str(key) for key_id, key in self.keys.items()}

    def _load_base(self, obj: Mapping[str, Any], parse_permission: type[_P]) -> None:
        algorithm: object = obj.get("algorithm")
        if algorithm is not None and algorithm != SHA256:
            raise WargFormatError(f"log state algorithm `{algorithm}` is not supported")
        self.algorithm = algorithm
        self.head = Head.from_json(obj["head"]) if obj.get("head") is not None else None
        permissions = _obj(obj.get("permissions", {}), "permissions")
        keys = _obj(obj.get("keys", {}), "keys")
        try:
            for key_id, names in permissions.items():
                self.permissions[str(key_id)] = {parse_permission(name) for name in names}
        except (TypeError, ValueError):
            raise WargFormatError("log state permissions are malformed") from None
        for key_id, text in keys.items():
            if not isinstance(text, str):
                raise WargFormatError("log state keys must be strings")
            self.keys[str(key_id)] = PublicKey.parse(text)


class _Txn(Generic[_P]):
    """Pending changes of one record, read through to the committed state."""

    def __init__(self, state: _LogState[_P]) -> None:
        self.state: _LogState[_P] = state
        self.algorithm = state.algorithm
        self.keys: dict[str, PublicKey] = {}
        self.permissions: dict[str, set[_P]] = {}

    def key(self, key_id: str) -> PublicKey | None:
        return self.keys.get(key_id) or self.state.keys.get(key_id)

    def held(self, key_id: str) -> set[_P]:
        if key_id in self.permissions:
            return self.permissions[key_id]
        return self.state.permissions.get(key_id, set())

    def writable(self, key_id: str) -> set[_P]:
        if key_id not in self.permissions:
            self.permissions[key_id] = set(self.state.permissions.get(key_id, set()))
        return self.permissions[key_id]

    def require(self, key_id: str, permissions: Iterable[_P]) -> None:
        held = self.held(key_id)
        for permission in permissions:
            if permission not in held:
                raise _fail(f"the key with ID {key_id} did not have required permission {permission}")

    def grant(self, signer: str, key: PublicKey, permissions: Iterable[_P]) -> None:
        permissions = tuple(permissions)
        self.require(signer, permissions)
        key_id = key.key_id
        self.keys[key_id] = key
        self.writable(key_id).update(permissions)

    def revoke(self, signer: str, key_id: str, permissions: Iterable[_P]) -> None:
        permissions = tuple(permissions)
        self.require(signer, permissions)
        for permission in permissions:
            if permission not in self.held(key_id):
                raise _fail(f"attempted to remove permission {permission} from key {key_id} which did not have it")
            self.writable(key_id).discard(permission)

    def commit(self) -> None:
        self.state.algorithm = self.algorithm
        self.state.keys.update(self.keys)
        self.state.permissions.update(self.permissions)


# ---- package log ---------------------------------------------------------------------------------


class PackageLogState(_LogState[PackagePermission]):
    """The validated state of one package log (spec 5.1)."""

    _log_kind = "package"
    _all_permissions = (PackagePermission.RELEASE, PackagePermission.YANK)

    def __init__(self) -> None:
        super().__init__()
        self.releases: dict[str, Release] = {}

    def validate(
        self, envelope: Envelope, record: PackageRecord | None = None, *, signature_checked: bool = False
    ) -> list[str]:
        """Validate and apply one record; return the versions whose release changed.

        Raises ``ValidationError`` (state untouched) or, when ``record`` is not
        given and the bytes do not decode, ``WargFormatError``.
        """
        if record is None:
            record = PackageRecord.decode(envelope.content_bytes)
        record_id = package_record_id(envelope.content_bytes)
        self._check_header(record.prev, record.version, record.time)
        txn: _Txn[PackagePermission] = _Txn(self)
        releases: dict[str, Release] = {}
        signer = envelope.key_id
        for entry in record.entries:
            if isinstance(entry, PackageRelease):
                txn.require(signer, (PackagePermission.RELEASE,))
            elif isinstance(entry, PackageYank):
                txn.require(signer, (PackagePermission.YANK,))
            if isinstance(entry, PackageInit):
                if txn.algorithm is not None:
                    raise _fail('a second "init" entry was found')
                if signer != entry.key.key_id:
                    raise _fail("the Key ID used to sign this envelope is not known to this package log")
                txn.algorithm = entry.hash_algorithm
                txn.keys[entry.key.key_id] = entry.key
                txn.writable(signer).update(self._all_permissions)
                continue
            if txn.algorithm is None:
                raise _fail('the first entry of the log is not "init"')
            if isinstance(entry, PackageGrantFlat):
                txn.grant(signer, entry.key, entry.permissions)
            elif isinstance(entry, PackageRevokeFlat):
                txn.revoke(signer, str(entry.key_id), entry.permissions)
            elif isinstance(entry, PackageRelease):
                version = str(entry.version)
                if version in releases or version in self.releases:
                    raise _fail(f"an entry attempted to release version {version} which is already released")
                releases[version] = Release(record_id, entry.version, signer, record.time, entry.content)
            else:
                version = str(entry.version)
                current = releases.get(version) or self.releases.get(version)
                if current is None:
                    raise _fail(f"an entry attempted to yank version {version} which had not yet been released")
                if current.yanked:
                    raise _fail(f"an entry attempted to yank version {version} which is already yanked")
                releases[version] = replace(current, yanked_by=signer, yanked_at=record.time)
        self._check_signer(txn, envelope, PACKAGE_RECORD_PREFIX, signature_checked)
        txn.commit()
        self.releases.update(releases)
        self.head = Head(record_id, record.time)
        return list(releases)

    def release(self, version: str | Version) -> Release | None:
        return self.releases.get(str(version))

    def summary_json(self) -> dict[str, Any]:
        """Everything but the releases, in the reference shape."""
        out = self._base_json()
        if self.keys:
            out["keys"] = self._keys_json()
        return out

    def to_json(self) -> dict[str, Any]:
        out = self._base_json()
        if self.releases:
            out["releases"] = {version: release.to_json() for version, release in self.releases.items()}
        if self.keys:
            out["keys"] = self._keys_json()
        return out

    @classmethod
    def from_parts(cls, summary: Mapping[str, Any], releases: Iterable[Release]) -> PackageLogState:
        state = cls()
        state._load_base(_obj(summary, "log state"), PackagePermission)
        for release in releases:
            state.releases[str(release.version)] = release
        return state

    @classmethod
    def from_json(cls, obj: object) -> PackageLogState:
        body = _obj(obj, "log state")
        releases = _obj(body.get("releases", {}), "releases")
        return cls.from_parts(body, (Release.from_json(value) for value in releases.values()))


# ---- operator log --------------------------------------------------------------------------------


class OperatorLogState(_LogState[OperatorPermission]):
    """The validated state of the operator log (spec 5.2)."""

    _log_kind = "operator"
    _all_permissions = (
        OperatorPermission.COMMIT,
        OperatorPermission.DEFINE_NAMESPACE,
        OperatorPermission.IMPORT_NAMESPACE,
    )

    def __init__(self) -> None:
        super().__init__()
        self.namespaces: dict[str, NamespaceState] = {}

    def namespace_state(self, namespace: str) -> NamespaceState | None:
        return self.namespaces.get(namespace)

    def validate(
        self, envelope: Envelope, record: OperatorRecord | None = None, *, signature_checked: bool = False
    ) -> list[str]:
        """Validate and apply one record; return the namespaces it defined or imported."""
        if record is None:
            record = OperatorRecord.decode(envelope.content_bytes)
        record_id = operator_record_id(envelope.content_bytes)
        self._check_header(record.prev, record.version, record.time)
        txn: _Txn[OperatorPermission] = _Txn(self)
        namespaces: dict[str, NamespaceState] = {}
        signer = envelope.key_id
        for entry in record.entries:
            if isinstance(entry, OperatorGrantFlat | OperatorRevokeFlat):
                txn.require(signer, (OperatorPermission.COMMIT,))
            elif isinstance(entry, OperatorDefineNamespace):
                txn.require(signer, (OperatorPermission.DEFINE_NAMESPACE,))
            elif isinstance(entry, OperatorImportNamespace):
                txn.require(signer, (OperatorPermission.IMPORT_NAMESPACE,))
            if isinstance(entry, OperatorInit):
                if txn.algorithm is not None:
                    raise _fail('a second "init" entry was found')
                txn.algorithm = entry.hash_algorithm
                txn.writable(signer).update(self._all_permissions)
                txn.keys[entry.key.key_id] = entry.key
                continue
            if txn.algorithm is None:
                raise _fail('the first entry of the log is not "init"')
            if isinstance(entry, OperatorGrantFlat):
                txn.grant(signer, entry.key, entry.permissions)
            elif isinstance(entry, OperatorRevokeFlat):
                txn.revoke(signer, str(entry.key_id), entry.permissions)
            else:
                name = entry.namespace
                if not is_kebab(name):
                    raise _fail(
                        f"the namespace `{name}` is invalid; namespace must be a lowercased kebab case string"
                    )
                if name in namespaces or name in self.namespaces:
                    raise _fail(f"the namespace `{name}` is already defined and cannot be redefined")
                imported = entry.registry if isinstance(entry, OperatorImportNamespace) else None
                namespaces[name] = NamespaceState(imported)
        self._check_signer(txn, envelope, OPERATOR_RECORD_PREFIX, signature_checked)
        txn.commit()
        self.namespaces.update(namespaces)
        self.head = Head(record_id, record.time)
        return list(namespaces)

    def to_json(self) -> dict[str, Any]:
        out = self._base_json()
        if self.keys:
            out["keys"] = self._keys_json()
        if self.namespaces:
            out["namespaces"] = {name: ns.to_json() for name, ns in self.namespaces.items()}
        return out

    @classmethod
    def from_json(cls, obj: object) -> OperatorLogState:
        body = _obj(obj, "log state")
        state = cls()
        state._load_base(body, OperatorPermission)
        for name, value in _obj(body.get("namespaces", {}), "namespaces").items():
            state.namespaces[str(name)] = NamespaceState.from_json(value)
        return state
