"""Every error case of the content API, with its exact gRPC code, through real gRPC stubs.

The codes are those of content-api.md 4.11 with the choices of DECISIONS.md
(content-api 5, 7, 10): clients branch on codes, so these are the contract.
"""

from __future__ import annotations

import hashlib
import os
import queue
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2 as pb
from cairn.api.grpc.gen.containerd.services.content.v1 import content_pb2_grpc as pb_grpc
from tests.conftest import CairnServer

NS = (("containerd-namespace", "default"),)
STAT, WRITE, COMMIT = pb.STAT, pb.WRITE, pb.COMMIT


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def stub(cairn_server: CairnServer) -> Iterator[pb_grpc.ContentStub]:
    with grpc.insecure_channel(f"unix:{cairn_server.socket}") as channel:
        yield pb_grpc.ContentStub(channel)


def code_of(call: object) -> grpc.StatusCode:
    assert isinstance(call, grpc.RpcError)
    return call.code()  # type: ignore[no-any-return]


def expect(code: grpc.StatusCode, fn: object, *args: object, **kwargs: object) -> str:
    """Call ``fn`` (draining a stream) and return the error details of the expected ``code``."""
    with pytest.raises(grpc.RpcError) as caught:
        result = fn(*args, **kwargs)  # type: ignore[operator]
        if hasattr(result, "__iter__"):
            list(result)
    assert caught.value.code() == code, caught.value.details()
    return str(caught.value.details())


def write(stub: pb_grpc.ContentStub, *requests: pb.WriteContentRequest) -> list[pb.WriteContentResponse]:
    return list(stub.Write(iter(requests), metadata=NS))


def commit_blob(stub: pb_grpc.ContentStub, data: bytes, ref: str = "r", **labels: str) -> str:
    responses = write(stub, pb.WriteContentRequest(action=COMMIT, ref=ref, data=data, labels=labels))
    assert responses[-1].digest == sha256(data)
    return responses[-1].digest


class HeldStream:
    """A Write stream fed one request at a time, answering each before the next."""

    def __init__(self, stub: pb_grpc.ContentStub) -> None:
        self._requests: queue.Queue[pb.WriteContentRequest | None] = queue.Queue()
        self._responses = stub.Write(iter(self._requests.get, None), metadata=NS)

    def send(self, **fields: object) -> pb.WriteContentResponse:
        self._requests.put(pb.WriteContentRequest(**fields))  # type: ignore[arg-type]
        return next(self._responses)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._requests.put(None)
        for _ in self._responses:
            pass


# -- namespaces ----------------------------------------------------------------
def test_missing_namespace_is_failed_precondition(stub: pb_grpc.ContentStub) -> None:
    details = expect(grpc.StatusCode.FAILED_PRECONDITION, stub.Info, pb.InfoRequest(digest=sha256(b"x")))
    assert "namespace is required" in details
    expect(grpc.StatusCode.FAILED_PRECONDITION, stub.List, pb.ListContentRequest())


def test_invalid_namespace_is_invalid_argument(stub: pb_grpc.ContentStub) -> None:
    details = expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        stub.Info,
        pb.InfoRequest(digest=sha256(b"x")),
        metadata=(("containerd-namespace", "bad namespace!"),),
    )
    assert "namespace validation" in details


# -- digests -------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["sha256:abc", "nonsense", "md5:" + "0" * 32, "sha256:" + "G" * 64, ""])
def test_malformed_digest_is_invalid_argument(stub: pb_grpc.ContentStub, bad: str) -> None:
    expect(grpc.StatusCode.INVALID_ARGUMENT, stub.Info, pb.InfoRequest(digest=bad), metadata=NS)
    expect(grpc.StatusCode.INVALID_ARGUMENT, stub.Read, pb.ReadContentRequest(digest=bad), metadata=NS)
    expect(grpc.StatusCode.INVALID_ARGUMENT, stub.Delete, pb.DeleteContentRequest(digest=bad), metadata=NS)
    expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        stub.Update,
        pb.UpdateRequest(info=pb.Info(digest=bad, labels={"a": "b"})),
        metadata=NS,
    )


def test_malformed_expected_digest_in_write(stub: pb_grpc.ContentStub) -> None:
    expect(grpc.StatusCode.INVALID_ARGUMENT, write, stub,
           pb.WriteContentRequest(action=STAT, ref="r", expected="sha256:short"))


def test_unknown_digest_is_not_found(stub: pb_grpc.ContentStub) -> None:
    unknown = sha256(b"never stored")
    details = expect(grpc.StatusCode.NOT_FOUND, stub.Info, pb.InfoRequest(digest=unknown), metadata=NS)
    assert unknown in details
    expect(grpc.StatusCode.NOT_FOUND, stub.Read, pb.ReadContentRequest(digest=unknown), metadata=NS)
    expect(grpc.StatusCode.NOT_FOUND, stub.Delete, pb.DeleteContentRequest(digest=unknown), metadata=NS)
    expect(grpc.StatusCode.NOT_FOUND, stub.Update,
           pb.UpdateRequest(info=pb.Info(digest=unknown)), metadata=NS)


# -- reads ---------------------------------------------------------------------
def test_read_chunks_are_1mib_with_absolute_offsets(stub: pb_grpc.ContentStub) -> None:
    data = os.urandom(3 * 1048576 + 123)
    digest = commit_blob(stub, data)
    responses = list(stub.Read(pb.ReadContentRequest(digest=digest), metadata=NS))
    assert [len(r.data) for r in responses] == [1048576, 1048576, 1048576, 123]
    assert [r.offset for r in responses] == [0, 1048576, 2097152, 3145728]
    assert b"".join(r.data for r in responses) == data

    part = list(stub.Read(pb.ReadContentRequest(digest=digest, offset=10, size=20), metadata=NS))
    assert [(r.offset, r.data) for r in part] == [(10, data[10:30])]
    clamped = list(stub.Read(pb.ReadContentRequest(digest=digest, offset=len(data) - 5, size=100),
                             metadata=NS))
    assert b"".join(r.data for r in clamped) == data[-5:]
    negative = list(stub.Read(pb.ReadContentRequest(digest=digest, offset=-7, size=3), metadata=NS))
    assert b"".join(r.data for r in negative) == data[:3]


def test_read_past_end_is_out_of_range(stub: pb_grpc.ContentStub) -> None:
    data = b"0123456789"
    digest = commit_blob(stub, data)
    details = expect(grpc.StatusCode.OUT_OF_RANGE, stub.Read,
                     pb.ReadContentRequest(digest=digest, offset=11), metadata=NS)
    assert "10 bytes" in details
    at_end = list(stub.Read(pb.ReadContentRequest(digest=digest, offset=10), metadata=NS))
    assert at_end == []


# -- writes --------------------------------------------------------------------
def test_first_message_without_ref_is_invalid_argument(stub: pb_grpc.ContentStub) -> None:
    details = expect(grpc.StatusCode.INVALID_ARGUMENT, write, stub, pb.WriteContentRequest(action=STAT))
    assert "reference" in details


def test_locked_ref_is_unavailable(stub: pb_grpc.ContentStub) -> None:
    holder = HeldStream(stub)
    holder.send(action=WRITE, ref="busy", offset=0, data=b"abc")
    details = expect(grpc.StatusCode.UNAVAILABLE, write, stub, pb.WriteContentRequest(action=STAT, ref="busy"))
    assert "busy" in details and "locked" in details
    # Abort of a held ref is refused the same way: one owner at a time.
    expect(grpc.StatusCode.UNAVAILABLE, stub.Abort, pb.AbortRequest(ref="busy"), metadata=NS)
    holder.close()
    # Released when the stream ends: the ingest is resumable by the next writer.
    status = write(stub, pb.WriteContentRequest(action=STAT, ref="busy"))[0]
    assert status.offset == 3


def test_wrong_offset_is_out_of_range(stub: pb_grpc.ContentStub) -> None:
    details = expect(
        grpc.StatusCode.OUT_OF_RANGE, write, stub,
        pb.WriteContentRequest(action=WRITE, ref="off", offset=0, data=b"abcd"),
        pb.WriteContentRequest(action=WRITE, ref="off", offset=7, data=b"efgh"),
    )
    assert "7" in details and "4" in details
    status = stub.Status(pb.StatusRequest(ref="off"), metadata=NS).status
    assert status.offset == 4


def test_size_mismatch_at_commit_keeps_the_ingest(stub: pb_grpc.ContentStub) -> None:
    details = expect(
        grpc.StatusCode.FAILED_PRECONDITION, write, stub,
        pb.WriteContentRequest(action=WRITE, ref="size", offset=0, data=b"12345"),
        pb.WriteContentRequest(action=COMMIT, ref="size", offset=5, total=6),
    )
    assert "5 != 6" in details
    assert stub.Status(pb.StatusRequest(ref="size"), metadata=NS).status.offset == 5
    # The kept ingest can be fixed and committed.
    responses = write(stub, pb.WriteContentRequest(action=COMMIT, ref="size", offset=5, data=b"6",
                                                   total=6))
    assert responses[-1].digest == sha256(b"123456")


def test_digest_mismatch_at_commit_keeps_the_ingest(stub: pb_grpc.ContentStub) -> None:
    wrong = sha256(b"other")
    details = expect(
        grpc.StatusCode.FAILED_PRECONDITION, write, stub,
        pb.WriteContentRequest(action=COMMIT, ref="dig", data=b"payload", expected=wrong),
    )
    assert wrong in details and sha256(b"payload") in details
    statuses = stub.ListStatuses(pb.ListStatusesRequest(), metadata=NS).statuses
    assert [(s.ref, s.offset) for s in statuses] == [("dig", 7)]


def test_total_mismatch_on_resume_is_failed_precondition(stub: pb_grpc.ContentStub) -> None:
    write(stub, pb.WriteContentRequest(action=WRITE, ref="tot", total=10, offset=0, data=b"abc"))
    details = expect(grpc.StatusCode.FAILED_PRECONDITION, write, stub,
                     pb.WriteContentRequest(action=STAT, ref="tot", total=11))
    assert "10" in details and "11" in details


def test_existing_digest_is_already_exists(stub: pb_grpc.ContentStub) -> None:
    data = b"present"
    digest = commit_blob(stub, data)
    expect(grpc.StatusCode.ALREADY_EXISTS, write, stub,
           pb.WriteContentRequest(action=STAT, ref="again", expected=digest))
    assert stub.ListStatuses(pb.ListStatusesRequest(), metadata=NS).statuses == []
    # Committing the same bytes under another ref: ALREADY_EXISTS and the ingest is gone.
    expect(grpc.StatusCode.ALREADY_EXISTS, write, stub,
           pb.WriteContentRequest(action=COMMIT, ref="dup", data=data))
    assert stub.ListStatuses(pb.ListStatusesRequest(), metadata=NS).statuses == []
    # An expected digest announced mid-stream that is present aborts the ingest.
    expect(grpc.StatusCode.ALREADY_EXISTS, write, stub,
           pb.WriteContentRequest(action=WRITE, ref="late", offset=0, data=b"pre"),
           pb.WriteContentRequest(action=STAT, ref="late", expected=digest))
    expect(grpc.StatusCode.NOT_FOUND, stub.Status, pb.StatusRequest(ref="late"), metadata=NS)


def test_bare_write_at_offset_zero_reports_without_truncating(stub: pb_grpc.ContentStub) -> None:
    write(stub, pb.WriteContentRequest(action=WRITE, ref="keep", offset=0, data=b"abc"))
    response = write(stub, pb.WriteContentRequest(action=WRITE, ref="keep", offset=0))[0]
    assert response.offset == 3
    assert response.digest == sha256(b"abc")
    # With data, offset 0 restarts the ingest.
    response = write(stub, pb.WriteContentRequest(action=WRITE, ref="keep", offset=0, data=b"Z"))[0]
    assert response.offset == 1


def test_write_responses_carry_status(stub: pb_grpc.ContentStub) -> None:
    responses = write(
        stub,
        pb.WriteContentRequest(action=STAT, ref="full", total=6),
        pb.WriteContentRequest(action=WRITE, ref="full", offset=0, data=b"abc"),
        pb.WriteContentRequest(action=COMMIT, ref="full", offset=3, data=b"def", total=6,
                               expected=sha256(b"abcdef"), labels={"k": "v"}),
    )
    assert [r.action for r in responses] == [STAT, WRITE, COMMIT]
    assert [r.offset for r in responses] == [0, 3, 6]
    assert responses[0].digest == sha256(b"")
    assert responses[2].digest == sha256(b"abcdef")
    assert all(r.total == 6 and r.started_at.seconds > 0 for r in responses)
    info = stub.Info(pb.InfoRequest(digest=sha256(b"abcdef")), metadata=NS).info
    assert dict(info.labels) == {"k": "v"} and info.size == 6 and info.created_at.seconds > 0


def test_sha512_expected_digest_commits_under_sha512(stub: pb_grpc.ContentStub) -> None:
    data = os.urandom(5000)
    expected = "sha512:" + hashlib.sha512(data).hexdigest()
    responses = write(stub, pb.WriteContentRequest(action=COMMIT, ref="512", data=data, expected=expected))
    assert responses[-1].digest == expected
    read = b"".join(r.data for r in stub.Read(pb.ReadContentRequest(digest=expected), metadata=NS))
    assert read == data


# -- labels, lists, statuses, abort --------------------------------------------
def test_label_errors_are_invalid_argument(stub: pb_grpc.ContentStub) -> None:
    digest = commit_blob(stub, b"lbl")
    expect(grpc.StatusCode.INVALID_ARGUMENT, stub.Update,
           pb.UpdateRequest(info=pb.Info(digest=digest, labels={"k": "x" * 4096}),
                            update_mask=FieldMask(paths=["labels.k"])), metadata=NS)
    expect(grpc.StatusCode.INVALID_ARGUMENT, stub.Update,
           pb.UpdateRequest(info=pb.Info(digest=digest, labels={"": "x"})), metadata=NS)
    details = expect(grpc.StatusCode.INVALID_ARGUMENT, stub.Update,
                     pb.UpdateRequest(info=pb.Info(digest=digest, size=3),
                                      update_mask=FieldMask(paths=["size"])), metadata=NS)
    assert '"size"' in details
    expect(grpc.StatusCode.INVALID_ARGUMENT, write, stub,
           pb.WriteContentRequest(action=COMMIT, ref="big-label", data=b"q", labels={"k": "v" * 5000}))


def test_update_replaces_or_patches_labels(stub: pb_grpc.ContentStub) -> None:
    digest = commit_blob(stub, b"patch", a="1", b="2")
    info = stub.Update(pb.UpdateRequest(info=pb.Info(digest=digest, labels={"c": "3"}),
                                        update_mask=FieldMask(paths=["labels.c", "labels.a"])),
                       metadata=NS).info
    assert dict(info.labels) == {"b": "2", "c": "3"}
    info = stub.Update(pb.UpdateRequest(info=pb.Info(digest=digest, labels={"z": "9"})), metadata=NS).info
    assert dict(info.labels) == {"z": "9"}
    assert info.updated_at.ToNanoseconds() >= info.created_at.ToNanoseconds()


def test_list_filters_and_bad_filter(stub: pb_grpc.ContentStub) -> None:
    one = commit_blob(stub, b"one", ref="1", kind="a")
    two = commit_blob(stub, b"two", ref="2", kind="b")
    listed = [i.digest for r in stub.List(pb.ListContentRequest(filters=["labels.kind==b"]), metadata=NS)
              for i in r.info]
    assert listed == [two]
    both = {i.digest for r in stub.List(pb.ListContentRequest(filters=["labels.kind==a", f"digest=={two}"]),
                                        metadata=NS) for i in r.info}
    assert both == {one, two}
    details = expect(grpc.StatusCode.INVALID_ARGUMENT, stub.List,
                     pb.ListContentRequest(filters=["labels.=="]), metadata=NS)
    assert details.startswith("filters: parse error")
    expect(grpc.StatusCode.INVALID_ARGUMENT, stub.ListStatuses,
           pb.ListStatusesRequest(filters=["ref~="]), metadata=NS)


def test_list_pages_hold_at_most_100(stub: pb_grpc.ContentStub) -> None:
    for i in range(130):
        commit_blob(stub, f"blob {i}".encode(), ref=f"p{i}")
    pages = list(stub.List(pb.ListContentRequest(), metadata=NS))
    assert [len(p.info) for p in pages] == [100, 30]
    assert all(i.updated_at.seconds > 0 for p in pages for i in p.info)


def test_unknown_ref_is_not_found(stub: pb_grpc.ContentStub) -> None:
    expect(grpc.StatusCode.NOT_FOUND, stub.Status, pb.StatusRequest(ref="ghost"), metadata=NS)
    expect(grpc.StatusCode.NOT_FOUND, stub.Abort, pb.AbortRequest(ref="ghost"), metadata=NS)


def test_abort_removes_the_ingest(stub: pb_grpc.ContentStub) -> None:
    write(stub, pb.WriteContentRequest(action=WRITE, ref="gone", offset=0, data=b"bytes"))
    stub.Abort(pb.AbortRequest(ref="gone"), metadata=NS)
    expect(grpc.StatusCode.NOT_FOUND, stub.Status, pb.StatusRequest(ref="gone"), metadata=NS)
    response = write(stub, pb.WriteContentRequest(action=STAT, ref="gone"))[0]
    assert response.offset == 0


def test_unserved_method_is_unimplemented(cairn_server: CairnServer) -> None:
    with grpc.insecure_channel(f"unix:{cairn_server.socket}") as channel:
        call = channel.unary_unary("/containerd.services.version.v1.Version/Version")
        expect(grpc.StatusCode.UNIMPLEMENTED, call, b"", metadata=NS)


def test_oversized_message_is_refused_and_loses_nothing(cairn_server: CairnServer) -> None:
    """A message over the 16 MiB limit is RESOURCE_EXHAUSTED; the ingest keeps what it had."""
    options = [("grpc.max_send_message_length", 64 << 20)]
    with grpc.insecure_channel(f"unix:{cairn_server.socket}", options=options) as channel:
        stub = pb_grpc.ContentStub(channel)
        write(stub, pb.WriteContentRequest(action=WRITE, ref="huge", offset=0, data=b"kept"))
        details = expect(grpc.StatusCode.RESOURCE_EXHAUSTED, write, stub,
                         pb.WriteContentRequest(action=WRITE, ref="huge", offset=4, data=b"x" * (17 << 20)))
        assert "larger than max" in details
        assert stub.Status(pb.StatusRequest(ref="huge"), metadata=NS).status.offset == 4
        final = write(stub, pb.WriteContentRequest(action=COMMIT, ref="huge", offset=4, data=b"!"))
        assert final[-1].digest == sha256(b"kept!")
