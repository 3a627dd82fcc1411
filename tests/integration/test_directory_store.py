"""The Directory StoreService against a real ``cairn serve``: records, limits, signatures, errors.

Every case drives the seed's ``store.v1.StoreService`` over gRPC with the
generated stubs, and checks what the registry face shows for the same records
(``/v2/dir/...``), since records are OCI artifacts (DECISIONS.md directory 3).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from cairn.api.grpc.gen.core.v1 import record_pb2
from cairn.api.grpc.gen.sign.v1 import signature_pb2
from cairn.api.grpc.gen.store.v1 import store_service_pb2 as pb
from cairn.api.grpc.gen.store.v1 import store_service_pb2_grpc as pb_grpc
from cairn.directory.canonical import canonical_json
from cairn.directory.signatures import generate_key, sign_cid
from tests.conftest import CairnServer

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "directory"
CIDS = json.loads((VECTORS / "cids.json").read_text())
FOUR_MIB = 4 * 1024 * 1024


@pytest.fixture
def stub(cairn_server: CairnServer) -> Iterator[pb_grpc.StoreServiceStub]:
    channel = grpc.insecure_channel(
        cairn_server.grpc_addr,
        options=[("grpc.max_send_message_length", 16 << 20), ("grpc.max_receive_message_length", 16 << 20)],
    )
    yield pb_grpc.StoreServiceStub(channel)
    channel.close()


def record(document: dict[str, Any]) -> record_pb2.Record:
    data = Struct()
    data.update(document)
    return record_pb2.Record(data=data)


def ref(cid: str) -> record_pb2.RecordRef:
    return record_pb2.RecordRef(cid=cid)


def canonical_of(message: record_pb2.Record) -> bytes:
    return canonical_json(json_format.MessageToDict(message.data))


def push(stub: pb_grpc.StoreServiceStub, *documents: dict[str, Any]) -> list[str]:
    return [r.cid for r in stub.Push(iter([record(d) for d in documents]))]


def tags(server: CairnServer) -> list[str]:
    r = requests.get(f"{server.http_url}/v2/dir/tags/list", timeout=10)
    return list(r.json().get("tags") or []) if r.status_code == 200 else []


def rpc_error(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        result = call()
        if isinstance(result, Iterator) or hasattr(result, "__next__"):
            list(result)
    return info.value


# -- records and CIDs ----------------------------------------------------------------------


@pytest.mark.parametrize("vector", CIDS["record_vectors"], ids=lambda v: v["file"])
def test_vector_records_push_pull_lookup(
    cairn_server: CairnServer, stub: pb_grpc.StoreServiceStub, vector: dict[str, Any]
) -> None:
    document = json.loads((VECTORS / vector["file"]).read_text())
    [cid] = push(stub, document)
    assert cid == vector["cid"]
    [pulled] = stub.Pull(iter([ref(cid)]))
    assert canonical_of(pulled) == vector["canonical_utf8"].encode()
    [meta] = stub.Lookup(iter([ref(cid)]))
    assert meta.cid == cid
    assert meta.schema_version == document["schema_version"]
    assert meta.created_at == document["created_at"]
    assert meta.annotations["name"] == document["name"]
    assert meta.annotations["version"] == document["version"]
    for key, value in document.get("annotations", {}).items():
        assert meta.annotations[key] == value
    # Push is idempotent, and the blob behind the tag is the canonical JSON itself.
    assert push(stub, document) == [cid]
    assert tags(cairn_server) == [cid]
    manifest = requests.get(
        f"{cairn_server.http_url}/v2/dir/manifests/{cid}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    ).json()
    assert manifest["layers"][0]["digest"] == vector["digest"]
    assert manifest["annotations"]["org.agntcy.dir/cid"] == cid
    assert "org.opencontainers.image.created" not in manifest["annotations"]
    blob = requests.get(f"{cairn_server.http_url}/v2/dir/blobs/{vector['digest']}", timeout=10)
    assert blob.content == vector["canonical_utf8"].encode()


def test_numbers_and_keys_are_canonicalised_from_the_struct(stub: pb_grpc.StoreServiceStub) -> None:
    document = {"b": 1.0, "a": [1e21, 1e-7, 0.000001, 12345678901234567890], "c": "<&>"}
    [cid] = push(stub, document)
    [pulled] = stub.Pull(iter([ref(cid)]))
    assert canonical_of(pulled) == (
        b'{"a":[1e+21,1e-7,0.000001,12345678901234567000],"b":1,"c":"\\u003c\\u0026\\u003e"}'
    )


def test_same_record_has_the_same_manifest_digest_everywhere(
    cairn_server: CairnServer, stub: pb_grpc.StoreServiceStub
) -> None:
    [cid] = push(stub, {"name": "reproducible", "schema_version": "0.7.0"})
    first = requests.head(f"{cairn_server.http_url}/v2/dir/manifests/{cid}", timeout=10)
    assert first.headers["Docker-Content-Digest"] == (
        "sha256:" + hashlib.sha256(
            requests.get(
                f"{cairn_server.http_url}/v2/dir/manifests/{cid}",
                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                timeout=10,
            ).content
        ).hexdigest()
    )


def test_cid_in_another_multibase_is_normalised(stub: pb_grpc.StoreServiceStub) -> None:
    [cid] = push(stub, {"name": "multibase"})
    upper = "B" + cid[1:].upper()
    [meta] = stub.Lookup(iter([ref(upper)]))
    assert meta.cid == cid


# -- stream semantics ----------------------------------------------------------------------


def test_pipelined_pushes_answer_in_order(stub: pb_grpc.StoreServiceStub) -> None:
    documents = [{"name": f"r{i}", "n": i} for i in range(300)]
    cids = push(stub, *documents)
    assert cids == [hashlib_cid(d) for d in documents]
    metas = list(stub.Lookup(iter([ref(c) for c in cids])))
    assert [m.cid for m in metas] == cids


def hashlib_cid(document: dict[str, Any]) -> str:
    from cairn.core.cid import cid_of_bytes

    return cid_of_bytes(canonical_json(document))


def test_first_error_ends_the_stream_and_later_items_are_not_stored(
    cairn_server: CairnServer, stub: pb_grpc.StoreServiceStub
) -> None:
    good, later = {"name": "before-error"}, {"name": "after-error"}
    answered: list[str] = []
    with pytest.raises(grpc.RpcError) as info:
        for answer in stub.Push(iter([record(good), record_pb2.Record(), record(later)])):
            answered.append(answer.cid)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "record data is required" in str(info.value.details())
    assert answered == [hashlib_cid(good)]
    assert hashlib_cid(later) not in tags(cairn_server)
    assert hashlib_cid(good) in tags(cairn_server)


def test_record_over_four_mib_is_resource_exhausted_and_nothing_is_stored(
    cairn_server: CairnServer, stub: pb_grpc.StoreServiceStub
) -> None:
    wrapper = len(b'{"x":""}')
    too_big = {"x": "a" * (FOUR_MIB + 1 - wrapper)}
    assert len(canonical_json(too_big)) == FOUR_MIB + 1
    error = rpc_error(lambda: stub.Push(iter([record(too_big)])))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert tags(cairn_server) == []
    just_fits = {"x": "a" * (FOUR_MIB - wrapper)}
    assert push(stub, just_fits) == [hashlib_cid(just_fits)]


def test_annotations_over_100_kib_are_invalid_and_nothing_is_stored(
    cairn_server: CairnServer, stub: pb_grpc.StoreServiceStub
) -> None:
    wrapper = len(b'{"k":""}')
    document = {"name": "big-metadata", "annotations": {"k": "v" * (100 * 1024 + 1 - wrapper)}}
    assert len(canonical_json(document["annotations"])) == 100 * 1024 + 1
    error = rpc_error(lambda: stub.Push(iter([record(document)])))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert tags(cairn_server) == []
    document["annotations"] = {"k": "v" * (100 * 1024 - wrapper)}
    assert push(stub, document) == [hashlib_cid(document)]


@pytest.mark.parametrize("method", ["Pull", "Lookup", "PullWithOptions"])
@pytest.mark.parametrize(
    ("cid", "code"),
    [
        ("", grpc.StatusCode.INVALID_ARGUMENT),
        ("not-a-cid", grpc.StatusCode.INVALID_ARGUMENT),
        ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku0", grpc.StatusCode.INVALID_ARGUMENT),
        ("baeareig77vqcdozl2wyk6z3cscaj5q5fggi53aoh64fewkdiri3cdauyn4", grpc.StatusCode.NOT_FOUND),
    ],
)
def test_reads_of_bad_or_unknown_cids(
    stub: pb_grpc.StoreServiceStub, method: str, cid: str, code: grpc.StatusCode
) -> None:
    if method == "PullWithOptions":
        requests_ = iter([pb.PullWithOptionsRequest(record_ref=ref(cid))])
    else:
        requests_ = iter([ref(cid)])
    error = rpc_error(lambda: getattr(stub, method)(requests_))
    assert error.code() == code


def test_delete_errors_and_idempotence(cairn_server: CairnServer, stub: pb_grpc.StoreServiceStub) -> None:
    assert rpc_error(lambda: stub.Delete(iter([ref("")]))).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_error(lambda: stub.Delete(iter([ref("zzz")]))).code() == grpc.StatusCode.INVALID_ARGUMENT
    [cid] = push(stub, {"name": "to-delete"})
    stub.Delete(iter([ref(cid), ref(cid)]))
    stub.Delete(iter([ref(cid)]))
    assert rpc_error(lambda: stub.Lookup(iter([ref(cid)]))).code() == grpc.StatusCode.NOT_FOUND
    assert cid not in tags(cairn_server)
    # The record can be pushed again after a delete.
    assert push(stub, {"name": "to-delete"}) == [cid]


# -- signatures ----------------------------------------------------------------------------


def signature_message(cid: str, key: bytes, **overrides: str) -> signature_pb2.Signature:
    signature = sign_cid(cid, key)
    message = signature_pb2.Signature(
        annotations=signature.annotations,
        signed_at=signature.signed_at,
        algorithm=signature.algorithm,
        signature=signature.signature,
        certificate=signature.certificate,
        content_type=signature.content_type,
        content_bundle=signature.content_bundle,
    )
    for name, value in overrides.items():
        setattr(message, name, value)
    return message


def push_signed(
    stub: pb_grpc.StoreServiceStub, document: dict[str, Any], signature: signature_pb2.Signature | None
) -> str:
    options = pb.PushOptions(signature=signature) if signature is not None else pb.PushOptions()
    [answer] = stub.PushWithOptions(iter([pb.PushWithOptionsRequest(record=record(document), options=options)]))
    return answer.record_ref.cid


def pull_signature(stub: pb_grpc.StoreServiceStub, cid: str) -> pb.PullWithOptionsResponse:
    request = pb.PullWithOptionsRequest(record_ref=ref(cid), options=pb.PullOptions(include_signature=True))
    [answer] = stub.PullWithOptions(iter([request]))
    return answer


def test_signature_is_stored_as_a_referrer_and_pulled_back(
    cairn_server: CairnServer, stub: pb_grpc.StoreServiceStub
) -> None:
    private, _public = generate_key()
    document = {"name": "signed", "version": "v1"}
    cid = hashlib_cid(document)
    sent = signature_message(cid, private)
    assert push_signed(stub, document, sent) == cid
    answer = pull_signature(stub, cid)
    assert answer.HasField("signature")
    assert answer.signature == sent
    assert canonical_of(answer.record) == canonical_json(document)
    # Without include_signature, no signature.
    [plain] = stub.PullWithOptions(iter([pb.PullWithOptionsRequest(record_ref=ref(cid))]))
    assert not plain.HasField("signature")
    # The signature is an OCI referrer of the record manifest, tagged with its own CID.
    record_digest = requests.head(f"{cairn_server.http_url}/v2/dir/manifests/{cid}", timeout=10).headers[
        "Docker-Content-Digest"
    ]
    index = requests.get(f"{cairn_server.http_url}/v2/dir/referrers/{record_digest}", timeout=10).json()
    [referrer] = index["manifests"]
    assert referrer["artifactType"] == "application/vnd.agntcy.dir.sign.signature.v1+json"
    assert referrer["annotations"]["agntcy.dir.referrer.type"] == "agntcy.dir.sign.v1.Signature"
    assert referrer["annotations"]["org.agntcy.dir/cid"] in tags(cairn_server)


def test_newest_signature_wins(stub: pb_grpc.StoreServiceStub) -> None:
    private, _ = generate_key()
    document = {"name": "twice-signed"}
    cid = hashlib_cid(document)
    older = signature_message(cid, private, signed_at="2026-01-01T00:00:00Z")
    newer = signature_message(cid, private, signed_at="2026-06-01T00:00:00Z")
    push_signed(stub, document, older)
    push_signed(stub, document, newer)
    assert pull_signature(stub, cid).signature.signed_at == "2026-06-01T00:00:00Z"


def test_signature_that_does_not_verify_is_refused(
    cairn_server: CairnServer, stub: pb_grpc.StoreServiceStub
) -> None:
    private, _ = generate_key()
    document = {"name": "forged"}
    other = signature_message(hashlib_cid({"name": "something else"}), private)
    error = rpc_error(lambda: push_signed(stub, document, other))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert tags(cairn_server) == []
    garbage = signature_message(hashlib_cid(document), private, signature=base64.b64encode(b"nope").decode())
    assert rpc_error(lambda: push_signed(stub, document, garbage)).code() == grpc.StatusCode.INVALID_ARGUMENT
    # A signature without a key or certificate is stored unverified (it cannot be checked).
    bare = signature_message(hashlib_cid(document), private, content_type="", content_bundle="")
    assert push_signed(stub, document, bare) == hashlib_cid(document)


def test_signature_annotations_over_100_kib_are_invalid(stub: pb_grpc.StoreServiceStub) -> None:
    private, _ = generate_key()
    document = {"name": "sig-metadata"}
    signature = signature_message(hashlib_cid(document), private)
    signature.annotations["k"] = "v" * (100 * 1024)
    assert rpc_error(lambda: push_signed(stub, document, signature)).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_delete_removes_the_signatures_too(cairn_server: CairnServer, stub: pb_grpc.StoreServiceStub) -> None:
    private, _ = generate_key()
    document = {"name": "signed-then-deleted"}
    cid = hashlib_cid(document)
    push_signed(stub, document, signature_message(cid, private))
    assert len(tags(cairn_server)) == 2
    stub.Delete(iter([ref(cid)]))
    assert tags(cairn_server) == []
