"""The Warg HTTP API of a real ``cairn serve``: publishing, content, fetch, proofs, monitor, ledger, errors.

Records are built and signed with cairn's protocol library and sent as raw
HTTP, so every status code and JSON body is asserted exactly as the wire
carries it (specs/warg.md §8). One server serves the whole module; each test
uses its own package names.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from cairn.warg import merkle_log, merkle_map
from cairn.warg.checkpoint import SignedCheckpoint
from cairn.warg.crypto import PrivateKey, PublicKey
from cairn.warg.hashes import AnyHash
from cairn.warg.ids import OPERATOR_LOG_ID, package_log_id, package_record_id
from cairn.warg.records import (
    Envelope,
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
from tests.conftest import Backend, CairnServer

ALICE = PrivateKey.parse("ecdsa-p256:I+UlDo0HxyBBFeelhPPWmD+LnklOpqZDkrFP5VduASk=")
BOB = PrivateKey.parse("ecdsa-p256:2CV1EpLaSYEn4In4OAEDAj5O4Hzu8AFAxgHXuG310Ew=")
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cairn_backend: Backend) -> Iterator[CairnServer]:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="cairn-warg-", dir="/tmp"))
    server = cairn_backend.server(
        root / "data",
        extra_args=["--warg-namespaces", "test,other", "--warg-import-namespaces", "far=registry.example.com"],
    )
    server.start()
    yield server
    try:
        server.stop()
    finally:
        server.kill()


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(f"{self.base}/v1/{path}", timeout=10, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.http.post(f"{self.base}/v1/{path}", json=body, timeout=10, **kwargs)

    def publish(self, name: str, envelope: Envelope, **extra: Any) -> requests.Response:
        body = {"packageName": name, "record": envelope.to_json(), **extra}
        return self.post(f"package/{package_log_id(name)}/record", body)

    def wait(self, name: str, record_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            answer = self.get(f"package/{package_log_id(name)}/record/{record_id}")
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            if body["state"] in ("published", "rejected") or time.monotonic() > deadline:
                return body
            time.sleep(0.01)

    def checkpoint(self) -> dict[str, Any]:
        answer = self.get("fetch/checkpoint")
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body


@pytest.fixture(scope="module")
def api(server: CairnServer) -> Api:
    return Api(server.http_url)


class Package:
    """A package log the test writes: keeps prev and time so each record chains onto the last."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.head: AnyHash | None = None
        self.time = RecordTime.now()

    def record(self, key: PrivateKey, *entries: PackageEntry, prev: AnyHash | None = None) -> Envelope:
        self.time = RecordTime(self.time.seconds + 1, 0)
        record = PackageRecord(prev=prev or self.head, version=0, time=self.time, entries=tuple(entries))
        return Envelope.sign_package(record, key)

    def accepted(self, envelope: Envelope) -> str:
        self.head = package_record_id(envelope.content_bytes)
        return str(self.head)


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def init(api: Api, name: str, key: PrivateKey = ALICE) -> Package:
    package = Package(name)
    envelope = package.record(key, PackageInit(key=key.public_key, hash_algorithm="sha256"))
    answer = api.publish(name, envelope)
    assert answer.status_code == 202, answer.text
    assert api.wait(name, package.accepted(envelope))["state"] == "published"
    return package


def release(api: Api, package: Package, version: str, data: bytes, key: PrivateKey = ALICE) -> dict[str, Any]:
    envelope = package.record(key, PackageRelease(Version.parse(version), AnyHash.parse(digest_of(data))))
    answer = api.publish(package.name, envelope)
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    for missing in body.get("missingContent", {}).values():
        upload = api.http.post(f"{api.base}/{missing['upload'][0]['url']}", data=data, timeout=10)
        assert upload.status_code == 201, upload.text
    result = api.wait(package.name, str(package_record_id(envelope.content_bytes)))
    if result["state"] == "published":
        package.accepted(envelope)
    return result


def error(answer: requests.Response) -> Any:
    assert answer.headers["Content-Type"] == "application/json"
    return answer.json()


# -- the happy paths ----------------------------------------------------------------------


def test_first_checkpoint_covers_the_operator_record_and_verifies(api: Api) -> None:
    answer = api.get("fetch/checkpoint")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"  # exactly: no charset
    signed = SignedCheckpoint.from_json(answer.json())
    operator = api.post("fetch/logs", {"logLength": signed.contents.log_length}).json()["operator"]
    first = PackageRecordOperator.init_key(operator[0])
    assert first.key_id == signed.key_id
    assert signed.verify(first)
    assert operator[0]["registryIndex"] == 0


class PackageRecordOperator:
    @staticmethod
    def init_key(published: dict[str, Any]) -> PublicKey:
        from cairn.warg.records import OperatorInit, OperatorRecord

        record = OperatorRecord.decode(base64.b64decode(published["contentBytes"]))
        init_entry = record.entries[0]
        assert isinstance(init_entry, OperatorInit)
        return init_entry.key


def test_publish_with_content_upload_then_download_with_ranges(api: Api) -> None:
    package = init(api, "test:upload")
    data = b"\0asm" + bytes(range(256)) * 40
    envelope = package.record(ALICE, PackageRelease(Version.parse("1.0.0"), AnyHash.parse(digest_of(data))))
    answer = api.publish(package.name, envelope)
    assert answer.status_code == 202
    record_id = str(package_record_id(envelope.content_bytes))
    log_id = package_log_id(package.name)
    url = f"v1/package/{log_id}/record/{record_id}/content/{digest_of(data)}"
    assert error(answer) == {
        "recordId": record_id,
        "state": "sourcing",
        "missingContent": {digest_of(data): {"upload": [{"type": "http", "method": "POST", "url": url}]}},
    }
    # wrong bytes: refused, nothing stored, still sourcing
    wrong = api.http.post(f"{api.base}/{url}", data=b"not it", timeout=10)
    assert wrong.status_code == 400
    assert error(wrong) == {
        "status": 400,
        "message": f"content digest `{digest_of(b'not it')}` does not match expected digest `{digest_of(data)}`",
    }
    assert api.get(f"package/{log_id}/record/{record_id}").json()["state"] == "sourcing"
    assert api.get(f"content/{digest_of(b'not it')}").status_code == 404
    # a digest the record does not need
    other = api.http.post(f"{api.base}/v1/package/{log_id}/record/{record_id}/content/{digest_of(b'x')}", data=b"x")
    assert other.status_code == 400
    assert error(other)["message"] == (
        f"content digest `{digest_of(b'x')}` is not required for package record `{record_id}`"
    )
    good = api.http.post(f"{api.base}/{url}", data=data, timeout=10)
    assert good.status_code == 201 and good.content == b""
    done = api.wait(package.name, record_id)
    assert done["state"] == "published" and isinstance(done["registryIndex"], int)
    # the record is no longer sourcing: 405
    late = api.http.post(f"{api.base}/{url}", data=data, timeout=10)
    assert late.status_code == 405 and error(late) == {"status": 405}
    # content sources, then the bytes with and without a range
    sources = api.get(f"content/{digest_of(data)}")
    assert sources.status_code == 200 and sources.headers["Content-Type"] == "application/json"
    [source] = sources.json()["contentSources"][digest_of(data)]
    assert source["type"] == "httpGet" and source["acceptRanges"] is True and source["size"] == len(data)
    assert source["url"].endswith(f"/content/sha256-{digest_of(data)[7:]}")
    assert requests.get(source["url"], timeout=10).content == data
    partial = requests.get(source["url"], headers={"Range": "bytes=10-19"}, timeout=10)
    assert partial.status_code == 206 and partial.content == data[10:20]


def test_publish_is_idempotent_and_content_is_shared_by_digest(api: Api) -> None:
    package = init(api, "test:dedupe")
    data = b"shared content"
    assert release(api, package, "1.0.0", data)["state"] == "published"
    # a second record needing the same bytes needs no upload
    envelope = package.record(ALICE, PackageRelease(Version.parse("1.0.1"), AnyHash.parse(digest_of(data))))
    first = api.publish(package.name, envelope)
    assert first.status_code == 202 and first.json()["state"] == "processing"
    record_id = str(package_record_id(envelope.content_bytes))
    assert api.wait(package.name, record_id)["state"] == "published"
    again = api.publish(package.name, envelope)
    assert again.status_code == 202
    assert again.json()["state"] == "published"


def test_rejections_carry_the_validation_reason(api: Api) -> None:
    package = init(api, "test:rejections")
    wrong_prev = package.record(ALICE, PackageYank(Version.parse("9.9.9")), prev=AnyHash.of(b"elsewhere"))
    api.publish(package.name, wrong_prev)
    result = api.wait(package.name, str(package_record_id(wrong_prev.content_bytes)))
    assert result == {
        "recordId": str(package_record_id(wrong_prev.content_bytes)),
        "state": "rejected",
        "reason": "the package record was invalid: previous record hash does not match",
    }
    yank_unknown = package.record(ALICE, PackageYank(Version.parse("9.9.9")))
    api.publish(package.name, yank_unknown)
    assert api.wait(package.name, str(package_record_id(yank_unknown.content_bytes)))["reason"] == (
        "the package record was invalid: an entry attempted to yank version 9.9.9 which had not yet been released"
    )


def test_grant_publish_revoke_and_rejection_of_the_revoked_key(api: Api) -> None:
    package = init(api, "test:grants")
    grant = package.record(
        ALICE, PackageGrantFlat(key=BOB.public_key, permissions=(PackagePermission.RELEASE,))
    )
    api.publish(package.name, grant)
    assert api.wait(package.name, package.accepted(grant))["state"] == "published"
    assert release(api, package, "2.0.0", b"by bob", key=BOB)["state"] == "published"
    revoke = package.record(
        ALICE, PackageRevokeFlat(key_id=AnyHash.parse(BOB.public_key.key_id), permissions=(PackagePermission.RELEASE,))
    )
    api.publish(package.name, revoke)
    assert api.wait(package.name, package.accepted(revoke))["state"] == "published"
    refused = release(api, package, "2.0.1", b"bob again", key=BOB)
    assert refused["state"] == "rejected"
    assert refused["reason"] == (
        f"the package record was invalid: the key with ID {BOB.public_key.key_id} did not have required "
        "permission release"
    )


# -- fetch ----------------------------------------------------------------------------------


def test_fetch_logs_pages_with_tokens_and_answers_for_every_checkpoint(api: Api) -> None:
    package = init(api, "test:paging")
    for n in range(5):
        assert release(api, package, f"1.0.{n}", f"page {n}".encode())["state"] == "published"
    length = api.checkpoint()["contents"]["logLength"]
    log_id = str(package_log_id(package.name))
    seen: list[int] = []
    token: str | None = None
    while True:
        body = api.post("fetch/logs", {"logLength": length, "limit": 2, "packages": {log_id: token}}).json()
        rows = body["packages"][log_id]
        seen += [row["registryIndex"] for row in rows]
        if rows:
            token = rows[-1]["fetchToken"]
        if not body["more"]:
            break
    assert len(seen) == 6 and seen == sorted(seen)
    # an older checkpoint still answers, with only what it covered
    older = api.post("fetch/logs", {"logLength": seen[2] + 1, "packages": {log_id: None}}).json()
    assert [row["registryIndex"] for row in older["packages"][log_id]] == seen[:3]


def test_fetch_names(api: Api) -> None:
    package = init(api, "test:named")
    log_id = str(package_log_id(package.name))
    answer = api.post("fetch/names", {"packages": [log_id, str(OPERATOR_LOG_ID)]})
    assert answer.status_code == 200
    assert answer.json() == {"packages": {log_id: "test:named", str(OPERATOR_LOG_ID): None}}
    unknown = str(package_log_id("test:never"))
    assert error(api.post("fetch/names", {"packages": [unknown]})) == {"status": 404, "type": "log", "id": unknown}


def test_fetch_logs_errors(api: Api) -> None:
    length = api.checkpoint()["contents"]["logLength"]
    limit = api.post("fetch/logs", {"logLength": length, "limit": 0})
    assert limit.status_code == 400
    assert error(limit) == {"status": 400, "message": "invalid records limit value `0`: must be between 1 and 1000"}
    assert api.post("fetch/logs", {"logLength": length, "limit": 1001}).status_code == 400
    missing = api.post("fetch/logs", {"logLength": length + 1000})
    assert missing.status_code == 404
    assert error(missing) == {"status": 404, "type": "logLength", "id": length + 1000}
    unknown = str(package_log_id("test:nobody"))
    assert error(api.post("fetch/logs", {"logLength": length, "packages": {unknown: None}})) == {
        "status": 404, "type": "log", "id": unknown,
    }
    bad = api.post("fetch/logs", {"logLength": length, "operator": "sha256:zz"})
    assert error(bad) == {"status": 404, "type": "fetchToken", "id": "sha256:zz"}
    never = str(AnyHash.of(b"never"))
    assert error(api.post("fetch/logs", {"logLength": length, "operator": never}))["type"] == "fetchToken"
    extra = api.post("fetch/logs", {"logLength": length, "surprise": 1})
    assert extra.status_code == 422 and error(extra)["status"] == 422


# -- publish errors -------------------------------------------------------------------------


def test_publish_errors_have_the_exact_bodies(api: Api) -> None:
    package = Package("test:errors")
    envelope = package.record(ALICE, PackageInit(key=ALICE.public_key, hash_algorithm="sha256"))
    body = {"packageName": "test:errors", "record": envelope.to_json()}
    wrong_id = str(package_log_id("test:other"))
    mismatch = api.post(f"package/{wrong_id}/record", body)
    assert mismatch.status_code == 400
    assert error(mismatch)["message"] == (
        f"package log identifier `{package_log_id('test:errors')}` derived from `test:errors` does not match "
        f"provided log identifier `{wrong_id}`"
    )
    log_id = package_log_id("test:errors")
    sources = api.post(f"package/{log_id}/record", {**body, "contentSources": {"sha256:" + "a" * 64: []}})
    assert (sources.status_code, error(sources)) == (
        501, {"status": 501, "message": "specifying content sources is not supported"},
    )
    nowhere = Package("nowhere:pkg").record(ALICE, PackageInit(key=ALICE.public_key, hash_algorithm="sha256"))
    answer = api.publish("nowhere:pkg", nowhere)
    assert (answer.status_code, error(answer)) == (404, {"status": 404, "type": "namespace", "id": "nowhere"})
    imported = api.publish("far:pkg", Package("far:pkg").record(ALICE, PackageInit(key=ALICE.public_key,
                                                                                      hash_algorithm="sha256")))
    assert (imported.status_code, error(imported)) == (409, {"status": 409, "type": "namespaceImport", "id": "far"})
    # a key the log does not know, and a signature that does not verify
    stranger = Package("test:errors").record(BOB, PackageYank(Version.parse("1.0.0")))
    unknown = api.publish("test:errors", stranger)
    assert (unknown.status_code, error(unknown)) == (
        401, {"status": 401, "message": f"unknown key id `{BOB.public_key.key_id}`"},
    )
    forged = Envelope(envelope.content_bytes, envelope.key_id, BOB.sign(b"WARG-PACKAGE-RECORD-SIGNATURE-V0",
                                                                        envelope.content_bytes))
    bad_signature = api.publish("test:errors", forged)
    assert bad_signature.status_code == 401
    assert error(bad_signature) == {"status": 401, "message": f"signature `{forged.signature}` verification failed"}
    # bytes that are not a record
    garbage = Envelope(b"\xff\xff", ALICE.public_key.key_id, ALICE.sign(b"WARG-PACKAGE-RECORD-SIGNATURE-V0", b"\xff\xff"))
    assert api.publish("test:errors", garbage).status_code == 400
    # a name that is not a package name, a body that is not JSON, the wrong content type
    assert api.post(f"package/{log_id}/record", {**body, "packageName": "Test:Errors"}).status_code == 422
    not_json = api.http.post(f"{api.base}/v1/package/{log_id}/record", data=b"{", headers=JSON, timeout=10)
    assert not_json.status_code == 400 and error(not_json)["status"] == 400
    text = api.http.post(f"{api.base}/v1/package/{log_id}/record", data=b"{}", timeout=10,
                         headers={"Content-Type": "text/plain"})
    assert text.status_code == 415 and error(text)["status"] == 415
    # nothing of that was stored
    assert error(api.get(f"package/{log_id}/record/{package_record_id(envelope.content_bytes)}")) == {
        "status": 404, "type": "log", "id": str(log_id),
    }


def test_record_lookup_errors(api: Api) -> None:
    package = init(api, "test:lookup")
    log_id = package_log_id(package.name)
    never = str(AnyHash.of(b"no such record"))
    assert error(api.get(f"package/{log_id}/record/{never}")) == {"status": 404, "type": "record", "id": never}
    # path parameters may carry ':' percent-encoded
    encoded = str(package.head).replace(":", "%3A")
    assert api.get(f"package/{str(log_id).replace(':', '%3A')}/record/{encoded}").json()["state"] == "published"


def test_federation_header_unknown_routes_and_discovery(api: Api) -> None:
    federated = api.get("fetch/checkpoint", headers={"Warg-Registry": "registry.example.com"})
    assert (federated.status_code, error(federated)) == (
        501, {"status": 501, "message": "`Warg-Registry` header is not supported"},
    )
    assert error(api.get("no/such/route")) == {"status": 404, "message": "the requested resource was not found"}
    discovery = api.http.get(f"{api.base}/.well-known/wasm-pkg/registry.json", timeout=10)
    assert discovery.json() == {"wargUrl": api.base}
    assert error(api.get(f"content/{digest_of(b'never uploaded')}")) == {
        "status": 404, "type": "contentDigest", "id": digest_of(b"never uploaded"),
    }


# -- proofs, monitor, ledger ----------------------------------------------------------------


def test_inclusion_and_consistency_proofs_verify_against_checkpoints(api: Api) -> None:
    package = init(api, "test:proofs")
    old = api.checkpoint()["contents"]
    assert release(api, package, "1.0.0", b"proof content")["state"] == "published"
    new = api.checkpoint()["contents"]
    head = api.get(f"package/{package_log_id(package.name)}/record/{package.head}").json()["registryIndex"]
    answer = api.post("proof/inclusion", {"logLength": new["logLength"], "leafs": [head]})
    assert answer.status_code == 200
    log_bundle = merkle_log.LogProofBundle.decode(base64.b64decode(answer.json()["log"]))
    leaf = merkle_log.leaf_hash(package_log_id(package.name), package.head or AnyHash.of(b""))
    assert "sha256:" + merkle_log.evaluate_inclusion(log_bundle, head, leaf).hex() == new["logRoot"]
    map_bundle = merkle_map.MapProofBundle.decode(base64.b64decode(answer.json()["map"]))
    path = merkle_map.key_path(package_log_id(package.name))
    found = merkle_map.evaluate(path, merkle_map.map_leaf_hash(package.head or AnyHash.of(b"")), map_bundle.proofs[0])
    assert "sha256:" + found.hex() == new["mapRoot"]
    consistency = api.post("proof/consistency", {"from": old["logLength"], "to": new["logLength"]})
    bundle = merkle_log.LogProofBundle.decode(base64.b64decode(consistency.json()["proof"]))
    old_root, new_root = merkle_log.evaluate_consistency(bundle)
    assert ("sha256:" + old_root.hex(), "sha256:" + new_root.hex()) == (old["logRoot"], new["logRoot"])


def test_proof_errors(api: Api) -> None:
    package = init(api, "test:prooferrors")
    length = api.checkpoint()["contents"]["logLength"]
    beyond = api.post("proof/inclusion", {"logLength": length, "leafs": [length + 100]})
    assert (beyond.status_code, error(beyond)) == (404, {"status": 404, "type": "leaf", "id": length + 100})
    empty = api.post("proof/inclusion", {"logLength": length, "leafs": []})
    assert (empty.status_code, error(empty)) == (
        422, {"status": 422, "reason": "failure", "message": "A bundle can not be made from no proofs"},
    )
    # the package's init record is no longer its head once it has a release
    first_index = api.get(f"package/{package_log_id(package.name)}/record/{package.head}").json()["registryIndex"]
    assert release(api, package, "1.0.0", b"moves the head")["state"] == "published"
    now = api.checkpoint()["contents"]
    stale = api.post("proof/inclusion", {"logLength": now["logLength"], "leafs": [first_index]})
    assert stale.status_code == 422
    body = error(stale)
    assert body["reason"] == "incorrectProof" and body["root"] == now["mapRoot"] and body["found"] != now["mapRoot"]
    zero = api.post("proof/consistency", {"from": 0, "to": length})
    assert (zero.status_code, error(zero)["reason"]) == (422, "failure")
    backwards = api.post("proof/consistency", {"from": length, "to": 1})
    assert error(backwards) == {
        "status": 422, "reason": "failure", "message": "tries to prove later value comes before earlier",
    }
    assert api.post("proof/consistency", {"from": 1, "to": length + 1000}).status_code == 422


def test_verify_checkpoint_and_ledger(api: Api) -> None:
    init(api, "test:monitor")
    signed = api.checkpoint()
    assert api.post("verify/checkpoint", signed).json() == {"checkpoint": "verified", "signature": "verified"}
    tampered = {**signed, "contents": {**signed["contents"], "logRoot": "sha256:" + "0" * 64}}
    assert api.post("verify/checkpoint", tampered).json() == {"checkpoint": "invalid", "signature": "invalid"}
    forged = {**signed, "signature": str(BOB.sign(b"WARG-CHECKPOINT-SIGNATURE-V0", b"something else"))}
    assert api.post("verify/checkpoint", forged).json() == {"checkpoint": "verified", "signature": "invalid"}
    length = signed["contents"]["logLength"]
    sources = api.get("ledger").json()
    assert sources["hashAlgorithm"] == "sha256"
    assert sources["sources"][0] == {
        "firstRegistryIndex": 0, "lastRegistryIndex": min(length, 1000) - 1, "url": "v1/ledger/records/0",
        "contentType": "application/vnd.warg.ledger.packed",
    }
    ledger = api.get("ledger/records/0")
    assert ledger.headers["Content-Type"] == "application/vnd.warg.ledger.packed"
    assert len(ledger.content) == 64 * min(length, 1000)
    assert ledger.content[:32] == OPERATOR_LOG_ID.digest


def test_state_survives_a_restart_without_rewriting_the_operator_log(api: Api, server: CairnServer) -> None:
    init(api, "test:restart")
    before = api.checkpoint()
    operator_before = api.post("fetch/logs", {"logLength": before["contents"]["logLength"]}).json()["operator"]
    key_file = server.data_dir / "warg-operator.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    server.restart()
    after = api.checkpoint()
    assert after["contents"]["logLength"] == before["contents"]["logLength"]
    assert after["contents"]["logRoot"] == before["contents"]["logRoot"]
    operator_after = api.post("fetch/logs", {"logLength": after["contents"]["logLength"]}).json()["operator"]
    assert operator_after == operator_before
    package = init(api, "test:afterrestart")
    assert package.head is not None
