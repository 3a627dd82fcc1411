"""Package and operator log validation (spec 5): vectors, every error text, transactionality."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cairn.warg.crypto import PrivateKey
from cairn.warg.errors import ValidationError, WargFormatError
from cairn.warg.hashes import AnyHash
from cairn.warg.ids import operator_record_id, package_record_id
from cairn.warg.records import (
    Envelope,
    OperatorDefineNamespace,
    OperatorEntry,
    OperatorGrantFlat,
    OperatorImportNamespace,
    OperatorInit,
    OperatorPermission,
    OperatorRecord,
    OperatorRevokeFlat,
    PackageEntry,
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
from cairn.warg.validation import Head, NamespaceState, OperatorLogState, PackageLogState, Release
from tests.unit.warg_vectors import load, operator_envelopes, package_envelopes

ALICE = PrivateKey.parse("ecdsa-p256:I+UlDo0HxyBBFeelhPPWmD+LnklOpqZDkrFP5VduASk=")
BOB = PrivateKey.parse("ecdsa-p256:2CV1EpLaSYEn4In4OAEDAj5O4Hzu8AFAxgHXuG310Ew=")
ALICE_ID = ALICE.public_key.key_id
BOB_ID = BOB.public_key.key_id
T0 = 1700000000
RELEASE, YANK = PackagePermission.RELEASE, PackagePermission.YANK
COMMIT = OperatorPermission.COMMIT
DEFINE, IMPORT = OperatorPermission.DEFINE_NAMESPACE, OperatorPermission.IMPORT_NAMESPACE
_UNSET: Any = object()


def v(text: str) -> Version:
    return Version.parse(text)


def release(version: str, content: bytes = b"x") -> PackageRelease:
    return PackageRelease(v(version), AnyHash.of(content))


class PackageLog:
    """A package log under test: builds chained records and validates them."""

    def __init__(self) -> None:
        self.state = PackageLogState()
        self.time = RecordTime(T0, 0)

    def record(self, *entries: PackageEntry, prev: Any = _UNSET, version: int = 0,
               time: RecordTime | None = None) -> PackageRecord:
        if prev is _UNSET:
            prev = self.state.head.record_id if self.state.head else None
        return PackageRecord(prev, version, time or self.time, entries)

    def append(self, key: PrivateKey, *entries: PackageEntry, **kwargs: Any) -> list[str]:
        return self.state.validate(Envelope.sign_package(self.record(*entries, **kwargs), key))

    def rejects(self, message: str, key: PrivateKey, *entries: PackageEntry, **kwargs: Any) -> None:
        before = copy.deepcopy(self.state.to_json())
        with pytest.raises(ValidationError) as info:
            self.append(key, *entries, **kwargs)
        assert info.value.message == message
        assert self.state.to_json() == before


class OperatorLog:
    def __init__(self) -> None:
        self.state = OperatorLogState()

    def append(self, key: PrivateKey, *entries: OperatorEntry, prev: Any = _UNSET) -> list[str]:
        if prev is _UNSET:
            prev = self.state.head.record_id if self.state.head else None
        record = OperatorRecord(prev, 0, RecordTime(T0, 0), entries)
        return self.state.validate(Envelope.sign_operator(record, key))

    def rejects(self, message: str, key: PrivateKey, *entries: OperatorEntry, **kwargs: Any) -> None:
        before = copy.deepcopy(self.state.to_json())
        with pytest.raises(ValidationError) as info:
            self.append(key, *entries, **kwargs)
        assert info.value.message == message
        assert self.state.to_json() == before


def started_package() -> PackageLog:
    log = PackageLog()
    log.append(ALICE, PackageInit(ALICE.public_key))
    return log


def started_operator() -> OperatorLog:
    log = OperatorLog()
    log.append(ALICE, OperatorInit(ALICE.public_key))
    return log


# ---- vectors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["minimal", "longer"])
def test_package_log_vectors(name: str) -> None:
    expected = load(f"package-logs/output/{name}.json")["Valid"]
    state = PackageLogState()
    for envelope in package_envelopes(load(f"package-logs/{name}.json")):
        state.validate(envelope)
    assert state.to_json() == expected
    restored = PackageLogState.from_json(expected)
    assert restored.to_json() == expected
    parts = PackageLogState.from_parts(state.summary_json(), state.releases.values())
    assert parts.to_json() == expected
    assert "releases" not in state.summary_json()


@pytest.mark.parametrize("name", ["minimal", "longer"])
def test_operator_log_vectors(name: str) -> None:
    expected = load(f"operator-logs/output/{name}.json")["Valid"]
    state = OperatorLogState()
    for envelope in operator_envelopes(load(f"operator-logs/{name}.json")):
        state.validate(envelope)
    assert state.to_json() == expected
    assert OperatorLogState.from_json(expected).to_json() == expected


def test_scenario_logs_validate_with_the_vector_signatures() -> None:
    scenario = load("scenario.json")
    operator = OperatorLogState()
    packages: dict[str, PackageLogState] = {}
    for row in scenario["records"]:
        envelope = Envelope.from_json(
            {"contentBytes": row["content_bytes_b64"], "keyId": row["key_id"], "signature": row["signature_random_k"]}
        )
        if row["kind"] == "operator":
            assert operator.validate(envelope) == ["test"]
        else:
            packages.setdefault(row["name"], PackageLogState()).validate(envelope)
        state = operator if row["kind"] == "operator" else packages[row["name"]]
        assert state.head is not None and str(state.head.record_id) == row["record_id"]
    assert operator.namespace_state("test") == NamespaceState(None)
    assert operator.to_json()["namespaces"] == {"test": "defined"}
    assert operator.has_permission(scenario["keys"]["alice_key_id"], COMMIT)
    foo = packages["test:foo"]
    assert foo.permissions[BOB_ID] == {YANK}
    first, second = foo.release("1.0.0"), foo.release(v("1.1.0"))
    assert first is not None and first.yanked and first.yanked_by == ALICE_ID
    assert first.yanked_at == RecordTime(T0 + 6, 0) and first.content == AnyHash.of(b"hello")
    assert second is not None and not second.yanked and second.by == BOB_ID
    assert second.content == AnyHash.of(b"world") and str(second.record_id) == scenario["records"][4]["record_id"]
    assert foo.head == Head(AnyHash.parse(scenario["records"][6]["record_id"]), RecordTime(T0 + 6, 0))


# ---- package log: every error text ---------------------------------------------------------------


def test_first_record_with_prev() -> None:
    PackageLog().rejects(
        "the first record contained a previous hash value", ALICE, PackageInit(ALICE.public_key),
        prev=AnyHash.of(b"x"),
    )


def test_missing_and_wrong_prev() -> None:
    log = started_package()
    log.rejects("non-initial record contained no previous hash", ALICE, release("1.0.0"), prev=None)
    log.rejects("previous record hash does not match", ALICE, release("1.0.0"), prev=AnyHash.of(b"x"))
    log.rejects("previous record hash does not match", ALICE, release("1.0.0"), prev=AnyHash("sha256", b"\x00"))


def test_protocol_version() -> None:
    PackageLog().rejects("protocol version 1 not allowed", ALICE, PackageInit(ALICE.public_key), version=1)


def test_lower_timestamp() -> None:
    log = started_package()
    log.rejects("record has lower timestamp than previous", ALICE, time=RecordTime(T0 - 1, 999_999_999))
    log.rejects("record has lower timestamp than previous", ALICE, time=RecordTime(T0 - 1, 0))
    assert log.append(ALICE, time=RecordTime(T0, 0)) == []  # equal time is fine
    log.time = RecordTime(T0, 1)
    log.append(ALICE)
    log.rejects("record has lower timestamp than previous", ALICE, time=RecordTime(T0, 0))


def test_missing_permissions() -> None:
    log = started_package()
    log.append(ALICE, PackageGrantFlat(BOB.public_key, (RELEASE,)))
    log.rejects(f"the key with ID {BOB_ID} did not have required permission yank", BOB, PackageYank(v("1.0.0")))
    log.append(ALICE, PackageRevokeFlat(AnyHash.parse(BOB_ID), (RELEASE,)))
    log.rejects(f"the key with ID {BOB_ID} did not have required permission release", BOB, release("1.0.0"))


def test_second_init() -> None:
    log = started_package()
    log.rejects('a second "init" entry was found', ALICE, PackageInit(ALICE.public_key))
    PackageLog().rejects(
        'a second "init" entry was found', ALICE, PackageInit(ALICE.public_key), PackageInit(ALICE.public_key)
    )


def test_init_signer_mismatch() -> None:
    PackageLog().rejects(
        "the Key ID used to sign this envelope is not known to this package log", BOB, PackageInit(ALICE.public_key)
    )


def test_entry_before_init() -> None:
    log = PackageLog()
    log.rejects('the first entry of the log is not "init"', ALICE, PackageGrantFlat(BOB.public_key, ()))
    log.rejects('the first entry of the log is not "init"', ALICE, PackageRevokeFlat(AnyHash.parse(BOB_ID), ()))
    # Release and Yank check their permission first, so the permission text comes out.
    log.rejects(f"the key with ID {ALICE_ID} did not have required permission release", ALICE, release("1.0.0"))
    log.rejects(f"the key with ID {ALICE_ID} did not have required permission yank", ALICE, PackageYank(v("1.0.0")))


def test_grant_requires_every_granted_permission() -> None:
    log = started_package()
    log.append(ALICE, PackageGrantFlat(BOB.public_key, (RELEASE,)))
    log.rejects(
        f"the key with ID {BOB_ID} did not have required permission yank",
        BOB, PackageGrantFlat(ALICE.public_key, (RELEASE, YANK)),
    )
    log.append(BOB, PackageGrantFlat(BOB.public_key, ()))  # an empty grant is fine, even for oneself
    assert log.state.permissions[BOB_ID] == {RELEASE}


def test_revoke_rules() -> None:
    log = started_package()
    log.append(ALICE, PackageGrantFlat(BOB.public_key, (RELEASE,)))
    log.rejects(
        f"attempted to remove permission yank from key {BOB_ID} which did not have it",
        ALICE, PackageRevokeFlat(AnyHash.parse(BOB_ID), (YANK,)),
    )
    unknown = str(AnyHash.of(b"nobody"))
    log.rejects(
        f"attempted to remove permission release from key {unknown} which did not have it",
        ALICE, PackageRevokeFlat(AnyHash.parse(unknown), (RELEASE,)),
    )
    log.rejects(
        f"attempted to remove permission release from key {BOB_ID} which did not have it",
        ALICE, PackageRevokeFlat(AnyHash.parse(BOB_ID), (RELEASE, RELEASE)),
    )
    log.rejects(
        f"the key with ID {BOB_ID} did not have required permission yank",
        BOB, PackageRevokeFlat(AnyHash.parse(ALICE_ID), (YANK,)),
    )
    log.append(BOB, PackageRevokeFlat(AnyHash.parse(BOB_ID), (RELEASE,)))
    assert log.state.to_json()["permissions"][BOB_ID] == []


def test_release_and_yank_rules() -> None:
    log = started_package()
    assert log.append(ALICE, release("1.0.0")) == ["1.0.0"]
    log.rejects("an entry attempted to release version 1.0.0 which is already released", ALICE, release("1.0.0"))
    log.rejects(
        "an entry attempted to release version 2.0.0 which is already released",
        ALICE, release("2.0.0"), release("2.0.0"),
    )
    log.rejects(
        "an entry attempted to yank version 2.0.0 which had not yet been released", ALICE, PackageYank(v("2.0.0"))
    )
    log.rejects(
        "an entry attempted to yank version 1.0.0+b which had not yet been released",
        ALICE, PackageYank(v("1.0.0+b")),
    )
    assert log.append(ALICE, PackageYank(v("1.0.0"))) == ["1.0.0"]
    log.rejects("an entry attempted to yank version 1.0.0 which is already yanked", ALICE, PackageYank(v("1.0.0")))
    log.rejects(
        "an entry attempted to release version 1.0.0 which is already released", ALICE, release("1.0.0", b"y")
    )
    assert log.append(ALICE, release("1.0.0+b"), release("1.0.0-rc.1")) == ["1.0.0+b", "1.0.0-rc.1"]
    assert log.append(ALICE, release("3.0.0"), PackageYank(v("3.0.0"))) == ["3.0.0"]
    log.rejects(
        "an entry attempted to yank version 4.0.0 which is already yanked",
        ALICE, release("4.0.0"), PackageYank(v("4.0.0")), PackageYank(v("4.0.0")),
    )


def test_empty_initial_record() -> None:
    PackageLog().rejects('the initial record is empty and does not "init"', ALICE)


def test_unknown_key() -> None:
    log = started_package()
    log.rejects("the Key ID used to sign this envelope is not known to this package log", BOB)


def test_bad_signature_and_signature_checked() -> None:
    log = started_package()
    record = log.record(release("1.0.0"))
    forged = Envelope(record.encode(), ALICE_ID, BOB.sign(b"WARG-PACKAGE-RECORD-SIGNATURE-V0", record.encode()))
    before = log.state.to_json()
    with pytest.raises(ValidationError) as info:
        log.state.validate(forged)
    assert info.value.message == "unable to verify signature"
    assert log.state.to_json() == before
    wrong_prefix = Envelope(record.encode(), ALICE_ID, ALICE.sign(b"WARG-OPERATOR-RECORD-SIGNATURE-V0", record.encode()))
    with pytest.raises(ValidationError, match="unable to verify signature"):
        log.state.validate(wrong_prefix)
    assert log.state.validate(forged, record, signature_checked=True) == ["1.0.0"]


def test_undecodable_content_is_a_format_error() -> None:
    with pytest.raises(WargFormatError):
        PackageLogState().validate(Envelope(b"\xff", ALICE_ID, ALICE.sign(b"P", b"")))


# ---- transactionality ----------------------------------------------------------------------------


def test_failed_record_leaves_package_state_untouched() -> None:
    log = started_package()
    log.append(ALICE, release("1.0.0"), PackageGrantFlat(BOB.public_key, (RELEASE,)))
    head = log.state.head
    releases = dict(log.state.releases)
    permissions = {k: set(p) for k, p in log.state.permissions.items()}
    keys = dict(log.state.keys)
    third = PrivateKey.generate().public_key
    log.rejects(
        "an entry attempted to yank version 9.0.0 which had not yet been released",
        ALICE,
        PackageGrantFlat(third, (RELEASE, YANK)),
        PackageGrantFlat(BOB.public_key, (YANK,)),
        PackageRevokeFlat(AnyHash.parse(BOB_ID), (RELEASE,)),
        release("2.0.0"),
        PackageYank(v("1.0.0")),
        PackageYank(v("9.0.0")),
    )
    assert log.state.head == head and log.state.releases == releases
    assert log.state.permissions == permissions and log.state.keys == keys
    release_one = log.state.release("1.0.0")
    assert release_one is not None and not release_one.yanked
    # A failure at the signature step (after every entry applied) also changes nothing.
    record = log.record(release("2.0.0"), PackageYank(v("1.0.0")))
    with pytest.raises(ValidationError):
        log.state.validate(Envelope(record.encode(), ALICE_ID, BOB.sign(b"x", b"y")))
    assert log.state.releases == releases and log.state.head == head
    # The same record then goes through.
    assert log.append(ALICE, release("2.0.0"), PackageYank(v("1.0.0"))) == ["2.0.0", "1.0.0"]


def test_failed_init_record_leaves_empty_state() -> None:
    log = PackageLog()
    log.rejects(
        "an entry attempted to yank version 1.0.0 which had not yet been released",
        ALICE, PackageInit(ALICE.public_key), PackageGrantFlat(BOB.public_key, (RELEASE,)), PackageYank(v("1.0.0")),
    )
    assert log.state.algorithm is None and not log.state.keys and not log.state.permissions
    assert log.state.to_json() == {}


# ---- operator log --------------------------------------------------------------------------------


def test_operator_init_gives_signer_everything_and_records_the_key() -> None:
    log = started_operator()
    assert log.state.permissions == {ALICE_ID: {COMMIT, DEFINE, IMPORT}}
    assert log.state.public_key(ALICE_ID) == ALICE.public_key
    assert log.state.head is not None
    assert log.state.to_json()["head"]["digest"] == str(log.state.head.record_id)


def test_operator_init_signer_mismatch_fails_at_the_key_step() -> None:
    OperatorLog().rejects(
        "the Key ID used to sign this envelope is not known to this operator log", BOB, OperatorInit(ALICE.public_key)
    )


def test_operator_header_errors() -> None:
    OperatorLog().rejects(
        "the first record contained a previous hash value", ALICE, OperatorInit(ALICE.public_key), prev=AnyHash.of(b"")
    )
    OperatorLog().rejects('the initial record is empty and does not "init"', ALICE)
    # Every operator entry but Init needs a permission, checked first, so before Init that text comes out.
    OperatorLog().rejects(
        f"the key with ID {ALICE_ID} did not have required permission commit",
        ALICE, OperatorGrantFlat(BOB.public_key, ()),
    )
    log = started_operator()
    log.rejects("non-initial record contained no previous hash", ALICE, prev=None)
    log.rejects("previous record hash does not match", ALICE, prev=AnyHash.of(b""))
    log.rejects('a second "init" entry was found', ALICE, OperatorInit(ALICE.public_key))
    log.rejects("the Key ID used to sign this envelope is not known to this operator log", BOB)


def test_operator_namespaces() -> None:
    log = started_operator()
    assert log.append(ALICE, OperatorDefineNamespace("wasi"), OperatorImportNamespace("ext", "other.example")) == [
        "wasi",
        "ext",
    ]
    assert log.state.namespace_state("wasi") == NamespaceState(None)
    assert log.state.namespace_state("ext") == NamespaceState("other.example")
    assert log.state.namespace_state("nope") is None
    for bad in ["Wasi", "wa_si", "", "1abc", "a--b"]:
        log.rejects(
            f"the namespace `{bad}` is invalid; namespace must be a lowercased kebab case string",
            ALICE, OperatorDefineNamespace(bad),
        )
    for taken in ["wasi", "ext"]:
        log.rejects(
            f"the namespace `{taken}` is already defined and cannot be redefined", ALICE, OperatorDefineNamespace(taken)
        )
        log.rejects(
            f"the namespace `{taken}` is already defined and cannot be redefined",
            ALICE, OperatorImportNamespace(taken, "x"),
        )
    log.rejects(
        "the namespace `new` is already defined and cannot be redefined",
        ALICE, OperatorDefineNamespace("new"), OperatorImportNamespace("new", "x"),
    )
    assert log.state.namespace_state("new") is None
    state_json = log.state.to_json()
    assert state_json["namespaces"] == {"wasi": "defined", "ext": {"imported": {"registry": "other.example"}}}
    assert OperatorLogState.from_json(state_json).to_json() == state_json


def test_operator_permissions() -> None:
    log = started_operator()
    log.rejects(f"the key with ID {BOB_ID} did not have required permission commit", BOB,
                OperatorGrantFlat(BOB.public_key, ()))
    log.append(ALICE, OperatorGrantFlat(BOB.public_key, (COMMIT,)))
    log.rejects(f"the key with ID {BOB_ID} did not have required permission defineNamespace", BOB,
                OperatorDefineNamespace("bob"))
    log.rejects(f"the key with ID {BOB_ID} did not have required permission importNamespace", BOB,
                OperatorImportNamespace("bob", "r"))
    log.rejects(f"the key with ID {BOB_ID} did not have required permission defineNamespace", BOB,
                OperatorGrantFlat(BOB.public_key, (DEFINE,)))
    log.rejects(
        f"attempted to remove permission importNamespace from key {BOB_ID} which did not have it",
        ALICE, OperatorRevokeFlat(AnyHash.parse(BOB_ID), (IMPORT,)),
    )
    log.append(BOB, OperatorGrantFlat(BOB.public_key, (COMMIT,)))
    assert log.state.has_permission(BOB_ID, COMMIT) and not log.state.has_permission(BOB_ID, DEFINE)
    log.append(ALICE, OperatorRevokeFlat(AnyHash.parse(BOB_ID), (COMMIT,)))
    assert log.state.to_json()["permissions"][BOB_ID] == []


def test_failed_operator_record_leaves_state_untouched() -> None:
    log = started_operator()
    log.append(ALICE, OperatorDefineNamespace("wasi"))
    log.rejects(
        "the namespace `wasi` is already defined and cannot be redefined",
        ALICE,
        OperatorGrantFlat(BOB.public_key, (COMMIT, DEFINE)),
        OperatorRevokeFlat(AnyHash.parse(ALICE_ID), (IMPORT,)),
        OperatorDefineNamespace("other"),
        OperatorDefineNamespace("wasi"),
    )
    assert set(log.state.namespaces) == {"wasi"} and BOB_ID not in log.state.keys
    assert log.state.permissions[ALICE_ID] == {COMMIT, DEFINE, IMPORT}


# ---- state JSON ----------------------------------------------------------------------------------


def test_state_json_round_trips_yanked_content_only_on_request() -> None:
    log = started_package()
    log.append(ALICE, release("1.0.0", b"a"), release("1.1.0", b"b"))
    log.append(ALICE, PackageYank(v("1.0.0")))
    yanked = log.state.releases["1.0.0"]
    assert "content" not in yanked.to_json()["state"]
    assert yanked.to_json(keep_content=True)["state"]["content"] == str(AnyHash.of(b"a"))
    assert Release.from_json(yanked.to_json(keep_content=True)) == yanked
    assert Release.from_json(yanked.to_json()).content is None
    assert Release.from_json(log.state.releases["1.1.0"].to_json()) == log.state.releases["1.1.0"]
    restored = PackageLogState.from_json(log.state.to_json())
    assert restored.to_json() == log.state.to_json()
    assert restored.head == log.state.head and restored.permissions == log.state.permissions
    # The restored state keeps validating the same log.
    record = PackageRecord(restored.head.record_id if restored.head else None, 0, RecordTime(T0, 0),
                           (PackageYank(v("1.1.0")),))
    assert restored.validate(Envelope.sign_package(record, ALICE)) == ["1.1.0"]


@pytest.mark.parametrize(
    "mutation",
    [
        {"algorithm": "sha512"},
        {"head": {"digest": "nope", "timestamp": "1.000000000"}},
        {"permissions": {ALICE_ID: ["owner"]}},
        {"keys": {ALICE_ID: 5}},
        {"releases": {"1.0.0": {"state": {"status": "gone"}}}},
    ],
)
def test_state_from_json_rejects(mutation: dict[str, Any]) -> None:
    body = {**started_package().state.to_json(), **mutation}
    with pytest.raises(WargFormatError):
        PackageLogState.from_json(body)


def test_record_ids_feed_the_head() -> None:
    log = started_package()
    envelope = Envelope.sign_package(log.record(release("1.0.0")), ALICE)
    log.state.validate(envelope)
    assert log.state.head == Head(package_record_id(envelope.content_bytes), RecordTime(T0, 0))
    operator = started_operator()
    record = OperatorRecord(operator.state.head.record_id if operator.state.head else None, 0,
                            RecordTime(T0, 5), ())
    envelope = Envelope.sign_operator(record, ALICE)
    assert operator.state.validate(envelope) == []
    assert operator.state.head == Head(operator_record_id(envelope.content_bytes), RecordTime(T0, 5))
