"""The Directory SyncService between real ``cairn serve`` nodes: mirror, one-shot, failures, deletion,
restarts, credentials, and a sync from a plain docker-registry that holds records copied with skopeo.

Node A holds records (pushed with the StoreService stubs, each with a signature
made by ``sign_cid``); node B syncs from A (``CreateSync`` with A's gRPC
address), and the tests check B's records through B's own StoreService and
``/v2/dir`` listing. Nodes poll every second (``--sync-poll-seconds 1``), so
every wait here is bounded by a few seconds; a wait that runs out fails with
the sync's state and B's log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import bcrypt
import grpc
import pytest
import requests
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from cairn.api.grpc.gen.core.v1 import record_pb2
from cairn.api.grpc.gen.sign.v1 import signature_pb2
from cairn.api.grpc.gen.store.v1 import store_service_pb2 as spb
from cairn.api.grpc.gen.store.v1 import store_service_pb2_grpc as sgrpc
from cairn.api.grpc.gen.store.v1 import sync_service_pb2 as pb
from cairn.api.grpc.gen.store.v1 import sync_service_pb2_grpc as pb_grpc
from cairn.directory.canonical import canonical_json
from cairn.directory.records import Record
from cairn.directory.signatures import Signature, generate_key, sign_cid, verify_signature
from tests.conftest import Backend, CairnServer, require_binary

POLL = 1.0
STATUS = pb.SyncStatus.Name
PRIVATE_KEY, PUBLIC_KEY = generate_key()
ONCE = (("cairn-sync-mode", "once"),)


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture
def nodes(short_tmp: Path, cairn_backend: Backend) -> Iterator[Callable[..., CairnServer]]:
    """Start ``cairn serve`` nodes polling every second, each with its own stores; all stopped at the end."""
    started: list[CairnServer] = []

    def start(name: str, *extra: str) -> CairnServer:
        node = cairn_backend.server(short_tmp / name, extra_args=["--sync-poll-seconds", str(POLL), *extra])
        node.start()
        started.append(node)
        return node

    yield start
    for node in started:
        try:
            node.stop()
        finally:
            node.kill()


def channel(node: CairnServer) -> grpc.Channel:
    """The node's unix socket: trusted even on a node with users, where TCP calls need tokens
    (docs/security.md). Nodes still reach each other over TCP (the remote URLs are TCP)."""
    return grpc.insecure_channel(f"unix:{node.socket}")


def syncs(node: CairnServer) -> pb_grpc.SyncServiceStub:
    return pb_grpc.SyncServiceStub(channel(node))


def store(node: CairnServer) -> sgrpc.StoreServiceStub:
    return sgrpc.StoreServiceStub(channel(node))


def document(name: str, i: int) -> dict[str, Any]:
    return {
        "name": f"{name}/agent-{i}",
        "version": f"1.{i}.0",
        "schema_version": "0.7.0",
        "description": f"record {i} of {name}",
        "skills": [{"name": "natural_language_processing", "id": 101 + i % 7}],
        "annotations": {"team": name},
    }


def push_signed(node: CairnServer, documents: list[dict[str, Any]]) -> list[str]:
    """Push records with a signature each (PushWithOptions, one pipelined stream); their CIDs."""

    def requests_() -> Iterator[spb.PushWithOptionsRequest]:
        for doc in documents:
            signature = sign_cid(Record.from_document(doc).cid, PRIVATE_KEY)
            data = Struct()
            data.update(doc)
            yield spb.PushWithOptionsRequest(
                record=record_pb2.Record(data=data),
                options=spb.PushOptions(signature=signature_pb2.Signature(
                    signed_at=signature.signed_at, algorithm=signature.algorithm, signature=signature.signature,
                    content_type=signature.content_type, content_bundle=signature.content_bundle,
                )),
            )

    return [answer.record_ref.cid for answer in store(node).PushWithOptions(requests_())]


def tags(node: CairnServer) -> set[str]:
    found: set[str] = set()
    last = ""
    while True:
        r = requests.get(f"{node.http_url}/v2/dir/tags/list", params={"n": 10000, "last": last}, timeout=30)
        if r.status_code == 404:
            return found
        r.raise_for_status()
        page = r.json().get("tags") or []
        found.update(page)
        if len(page) < 10000:
            return found
        last = page[-1]


def pull_canonical(node: CairnServer, cids: list[str]) -> list[bytes]:
    refs = (record_pb2.RecordRef(cid=cid) for cid in cids)
    return [canonical_json(json_format.MessageToDict(r.data)) for r in store(node).Pull(refs)]


def get_sync(node: CairnServer, sync_id: str) -> tuple[pb.GetSyncResponse, str]:
    """The sync and its failure reason (the status_message field, also sent as trailing metadata)."""
    response, call = syncs(node).GetSync.with_call(pb.GetSyncRequest(sync_id=sync_id))
    reason = dict(call.trailing_metadata() or ()).get("cairn-sync-reason", "")
    assert reason == response.status_message
    return response, response.status_message


def create(node: CairnServer, url: str, metadata: tuple[tuple[str, str], ...] = ()) -> str:
    return str(syncs(node).CreateSync(pb.CreateSyncRequest(remote_directory_url=url), metadata=metadata).sync_id)


def wait_for(what: str, check: Callable[[], bool], timeout: float, *logs: CairnServer) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    tail = "\n".join(f"--- {n.data_dir.name} log ---\n{n.log()[-4000:]}" for n in logs)
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{tail}")


def wait_status(node: CairnServer, sync_id: str, status: int, timeout: float = 15.0) -> pb.GetSyncResponse:
    wait_for(
        f"sync {sync_id} to be {STATUS(status)}",
        lambda: get_sync(node, sync_id)[0].status == status,
        timeout,
        node,
    )
    return get_sync(node, sync_id)[0]


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        result = call()
        if hasattr(result, "__next__"):
            list(result)
    return info.value


def parse_time(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- replication ---------------------------------------------------------------------------


def test_mirror_copies_signed_records_and_follows_new_ones(nodes: Callable[..., CairnServer]) -> None:
    a, b = nodes("a"), nodes("b")
    cids = push_signed(a, [document("mirror", i) for i in range(500)])
    want = tags(a)
    assert len(want) == 1000  # 500 records + 500 signatures

    sync_id = create(b, a.grpc_addr)
    wait_for("B to hold every record and signature of A", lambda: tags(b) >= want, 60, b)

    sync, reason = get_sync(b, sync_id)
    assert sync.status == pb.SYNC_STATUS_IN_PROGRESS, reason  # a mirror never completes
    assert sync.remote_directory_url == a.grpc_addr
    assert parse_time(sync.created_time) <= parse_time(sync.last_update_time)
    assert pull_canonical(b, cids) == pull_canonical(a, cids)  # byte-identical, so CIDs verify

    pulls = store(b).PullWithOptions(
        spb.PullWithOptionsRequest(record_ref=record_pb2.RecordRef(cid=cid), options=spb.PullOptions(include_signature=True))
        for cid in cids
    )
    for cid, answer in zip(cids, pulls, strict=True):
        assert answer.HasField("signature"), cid
        s = answer.signature
        signature = Signature(
            annotations=dict(s.annotations), signed_at=s.signed_at, algorithm=s.algorithm, signature=s.signature,
            certificate=s.certificate, content_type=s.content_type, content_bundle=s.content_bundle,
        )
        verify_signature(cid, signature, PUBLIC_KEY)
    metas_a = list(store(a).Lookup(record_pb2.RecordRef(cid=c) for c in cids[:20]))
    metas_b = list(store(b).Lookup(record_pb2.RecordRef(cid=c) for c in cids[:20]))
    assert metas_a == metas_b

    # Records pushed to A after the sync started arrive within two poll intervals (plus the pass).
    started = time.monotonic()
    late = push_signed(a, [document("late", i) for i in range(5)])
    wait_for("new records of A on B", lambda: set(late) <= tags(b), 2 * POLL + 2.0, b)
    assert time.monotonic() - started < 2 * POLL + 2.0
    assert pull_canonical(b, late) == pull_canonical(a, late)
    assert get_sync(b, sync_id)[0].status == pb.SYNC_STATUS_IN_PROGRESS


def test_one_shot_sync_completes_and_does_not_follow(nodes: Callable[..., CairnServer]) -> None:
    a, b = nodes("a"), nodes("b")
    cids = push_signed(a, [document("once", i) for i in range(20)])
    sync_id = create(b, f"http://{a.grpc_addr}", ONCE)
    sync = wait_status(b, sync_id, pb.SYNC_STATUS_COMPLETED)
    assert sync.remote_directory_url == f"http://{a.grpc_addr}"
    assert tags(b) == tags(a)
    assert pull_canonical(b, cids) == pull_canonical(a, cids)

    late = push_signed(a, [document("after", 0)])
    time.sleep(3 * POLL)
    assert not set(late) & tags(b)
    assert get_sync(b, sync_id)[0].status == pb.SYNC_STATUS_COMPLETED


def test_remote_down_fails_with_reason_and_retries(nodes: Callable[..., CairnServer]) -> None:
    a, b = nodes("a"), nodes("b")
    push_signed(a, [document("down", i) for i in range(300)])
    mirror = create(b, a.grpc_addr)
    wait_for("the first records on B", lambda: bool(tags(b)), 20, b)
    a.kill()  # possibly mid-pass

    wait_status(b, mirror, pb.SYNC_STATUS_FAILED, timeout=20)
    _, reason = get_sync(b, mirror)
    assert a.grpc_addr in reason or str(a.http_port) in reason, reason
    once = create(b, a.grpc_addr, ONCE)
    wait_status(b, once, pb.SYNC_STATUS_FAILED)
    _, reason = get_sync(b, once)
    assert "unreachable" in reason and a.grpc_addr in reason, reason

    a.start()  # same data and ports
    late = push_signed(a, [document("back", 0)])
    # The mirror retries on its own (backoff of at most 8 poll intervals) and is IN_PROGRESS again.
    wait_for("the mirror to recover", lambda: set(late) <= tags(b), 8 * POLL + 10, b)
    wait_status(b, mirror, pb.SYNC_STATUS_IN_PROGRESS)
    assert tags(b) == tags(a)
    assert get_sync(b, mirror)[1] == ""  # no reason once it works again
    # A FAILED one-shot sync is retried by creating it again: same id, then COMPLETED.
    assert get_sync(b, once)[0].status == pb.SYNC_STATUS_FAILED
    assert create(b, a.grpc_addr, ONCE) == once
    wait_status(b, once, pb.SYNC_STATUS_COMPLETED)


def test_delete_sync_stops_the_mirror_and_keeps_data(nodes: Callable[..., CairnServer]) -> None:
    a, b = nodes("a"), nodes("b")
    cids = push_signed(a, [document("del", i) for i in range(10)])
    sync_id = create(b, a.grpc_addr)
    wait_for("B to hold A's records", lambda: tags(b) == tags(a), 20, b)

    syncs(b).DeleteSync(pb.DeleteSyncRequest(sync_id=sync_id))
    assert get_sync(b, sync_id)[0].status in (pb.SYNC_STATUS_DELETE_PENDING, pb.SYNC_STATUS_DELETED)
    wait_status(b, sync_id, pb.SYNC_STATUS_DELETED)
    error = rpc_error(lambda: syncs(b).DeleteSync(pb.DeleteSyncRequest(sync_id=sync_id)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "sync has already been deleted" in (error.details() or "")
    listed = {item.sync_id: item.status for item in syncs(b).ListSyncs(pb.ListSyncsRequest())}
    assert listed == {sync_id: pb.SYNC_STATUS_DELETED}

    assert pull_canonical(b, cids) == pull_canonical(a, cids)  # copied data stays
    late = push_signed(a, [document("after-delete", 0)])
    time.sleep(3 * POLL)
    assert not set(late) & tags(b)


def test_syncs_survive_a_restart(nodes: Callable[..., CairnServer]) -> None:
    a, b = nodes("a"), nodes("b")
    push_signed(a, [document("restart", i) for i in range(10)])
    sync_id = create(b, a.grpc_addr)
    wait_for("B to hold A's records", lambda: tags(b) == tags(a), 20, b)
    before, _ = get_sync(b, sync_id)

    b.restart()
    after, _ = get_sync(b, sync_id)
    assert (after.sync_id, after.remote_directory_url, after.created_time) == (
        before.sync_id, before.remote_directory_url, before.created_time,
    )
    assert after.status == pb.SYNC_STATUS_IN_PROGRESS
    late = push_signed(a, [document("after-restart", 0)])
    wait_for("the mirror to continue after the restart", lambda: set(late) <= tags(b), 2 * POLL + 5, b)


# -- the API -------------------------------------------------------------------------------


def test_list_syncs_pages_and_errors(nodes: Callable[..., CairnServer]) -> None:
    b = nodes("b")
    urls = [f"127.0.0.1:{port}" for port in (1, 2, 3, 4, 5)]
    ids = [create(b, url, ONCE) for url in urls]
    assert len(set(ids)) == 5

    def listed(**fields: int) -> list[str]:
        return [item.sync_id for item in syncs(b).ListSyncs(pb.ListSyncsRequest(**fields))]

    assert listed() == ids  # oldest first
    assert listed(limit=2) == ids[:2]
    assert listed(offset=3) == ids[3:]
    assert listed(limit=2, offset=2) == ids[2:4]
    assert listed(limit=0, offset=1) == ids[1:]  # limit 0 means no limit
    assert listed(offset=9) == []
    items = {item.sync_id: item for item in syncs(b).ListSyncs(pb.ListSyncsRequest())}
    assert [items[i].remote_directory_url for i in ids] == urls

    for bad in ("", "no-port", "ftp://127.0.0.1:1", "http://:80", "127.0.0.1:99999", "http://h:1/path"):
        error = rpc_error(lambda bad=bad: create(b, bad))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert (error.details() or "").startswith("invalid remote directory URL"), error.details()
    error = rpc_error(lambda: create(b, "127.0.0.1:1", (("cairn-sync-mode", "sometimes"),)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    for call in (
        lambda: syncs(b).GetSync(pb.GetSyncRequest(sync_id="no-such-sync")),
        lambda: syncs(b).DeleteSync(pb.DeleteSyncRequest(sync_id="no-such-sync")),
    ):
        assert rpc_error(call).code() == grpc.StatusCode.NOT_FOUND
    wait_status(b, ids[0], pb.SYNC_STATUS_FAILED)  # nothing listens on port 1


def test_registry_credentials_without_users_are_the_url_alone(nodes: Callable[..., CairnServer]) -> None:
    a = nodes("a")
    stub = syncs(a)
    empty = stub.RequestRegistryCredentials(pb.RequestRegistryCredentialsRequest(requesting_node_id=""))
    assert not empty.success
    assert empty.error_message == "requesting node ID is required"
    granted = stub.RequestRegistryCredentials(pb.RequestRegistryCredentialsRequest(requesting_node_id="anyone"))
    assert granted.success
    assert granted.remote_registry_url == a.http_url
    assert not granted.HasField("basic_auth")


@pytest.fixture
def users_file(short_tmp: Path) -> Path:
    path = short_tmp / "users.htpasswd"
    digest = bcrypt.hashpw(b"admin-secret", bcrypt.gensalt(rounds=5)).decode()
    path.write_text(f"admin:{digest}\n")
    return path


def test_registry_credentials_with_users_are_scoped_tokens(
    nodes: Callable[..., CairnServer], users_file: Path
) -> None:
    a = nodes("a", "--users-file", str(users_file), "--sync-allowed-nodes", "node-b, node-c")
    cids = push_signed(a, [document("auth", i) for i in range(5)])
    stub = syncs(a)

    def ask(node_id: str) -> pb.RequestRegistryCredentialsResponse:
        return stub.RequestRegistryCredentials(pb.RequestRegistryCredentialsRequest(requesting_node_id=node_id))

    assert not ask("").success
    refused = ask("node-z")
    assert not refused.success and "node-z" in refused.error_message
    assert not refused.HasField("basic_auth")
    granted = ask("node-b")
    assert granted.success and granted.remote_registry_url == a.http_url
    user, password = granted.basic_auth.username, granted.basic_auth.password
    assert user and password

    # Read-only and scoped to the records repository.
    assert requests.get(f"{a.http_url}/v2/dir/tags/list", timeout=10).status_code == 401
    listing = requests.get(f"{a.http_url}/v2/dir/tags/list", auth=(user, password), timeout=10)
    assert listing.status_code == 200 and set(cids) <= set(listing.json()["tags"])
    manifest = requests.get(
        f"{a.http_url}/v2/dir/manifests/{cids[0]}", auth=(user, password), timeout=10,
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert manifest.status_code == 200
    upload = requests.post(f"{a.http_url}/v2/dir/blobs/uploads/", auth=(user, password), timeout=10)
    assert upload.status_code == 403, upload.text
    put = requests.put(
        f"{a.http_url}/v2/dir/manifests/x", data=manifest.content, auth=(user, password), timeout=10,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert put.status_code == 403
    assert requests.get(f"{a.http_url}/v2/other/tags/list", auth=(user, password), timeout=10).status_code == 403
    # Through the token flow the token never grants more than pull on dir.
    token = requests.get(
        f"{a.http_url}/token", params={"service": "cairn", "scope": "repository:dir:pull,push"},
        auth=(user, password), timeout=10,
    )
    assert token.status_code == 200
    bearer = {"Authorization": f"Bearer {token.json()['token']}"}
    assert requests.get(f"{a.http_url}/v2/dir/tags/list", headers=bearer, timeout=10).status_code == 200
    assert requests.post(f"{a.http_url}/v2/dir/blobs/uploads/", headers=bearer, timeout=10).status_code in (401, 403)
    assert requests.get(f"{a.http_url}/v2/dir/tags/list", auth=(user, password + "x"), timeout=10).status_code == 401

    # A node on the allow-list syncs with those credentials; one that is not gets FAILED with the reason.
    b = nodes("b", "--node-id", "node-b")
    sync_id = create(b, a.grpc_addr, ONCE)
    wait_status(b, sync_id, pb.SYNC_STATUS_COMPLETED, timeout=20)
    assert pull_canonical(b, cids) == pull_canonical(a, cids)
    z = nodes("z", "--node-id", "node-z")
    refused_id = create(z, a.grpc_addr)
    wait_status(z, refused_id, pb.SYNC_STATUS_FAILED)
    assert "not allowed" in get_sync(z, refused_id)[1]
    assert not tags(z)


# -- from a plain OCI registry ---------------------------------------------------------------


def test_sync_from_docker_registry_filled_by_skopeo(
    nodes: Callable[..., CairnServer], short_tmp: Path
) -> None:
    from tests.integration.registry.conftest import ContainerTools, DockerRegistry

    skopeo = require_binary("skopeo")
    require_binary("docker-registry")
    a = nodes("a")
    cids = push_signed(a, [document("skopeo", i) for i in range(3)])
    root = short_tmp / "docker-registry"
    root.mkdir()
    registry = DockerRegistry(root)
    registry.start()
    try:
        tools = ContainerTools(short_tmp / "tools")
        a_host = a.http_url.removeprefix("http://")
        for tag in sorted(tags(a)):  # records and their signatures, each under its CID tag
            tools.skopeo(
                "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                f"docker://{a_host}/dir:{tag}", f"docker://{registry.host}/dir:{tag}",
            )
        copied = requests.get(f"{registry.url}/v2/dir/tags/list", timeout=10).json()["tags"]
        assert set(copied) == tags(a), skopeo

        b = nodes("b")
        sync_id = create(b, f"oci+{registry.url}", ONCE)
        wait_status(b, sync_id, pb.SYNC_STATUS_COMPLETED, timeout=20)
        assert tags(b) == tags(a)
        assert pull_canonical(b, cids) == pull_canonical(a, cids)
        for answer in store(b).PullWithOptions(
            spb.PullWithOptionsRequest(record_ref=record_pb2.RecordRef(cid=c), options=spb.PullOptions(include_signature=True))
            for c in cids
        ):
            assert answer.HasField("signature")
        # The same registry named with an explicit repository path works as a mirror too.
        mirror = create(b, f"oci+{registry.url}/dir")
        wait_status(b, mirror, pb.SYNC_STATUS_IN_PROGRESS)
        manifest = json.loads(requests.get(
            f"{b.http_url}/v2/dir/manifests/{cids[0]}", timeout=10,
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        ).content)
        assert manifest["layers"][0]["mediaType"] == "application/json"
    finally:
        registry.stop()
