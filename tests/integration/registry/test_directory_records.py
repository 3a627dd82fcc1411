"""Directory records are OCI artifacts: listed by ``/v2/dir/tags/list`` and copied out with skopeo."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import requests
from google.protobuf.struct_pb2 import Struct

from cairn.api.grpc.gen.core.v1 import record_pb2
from cairn.api.grpc.gen.store.v1 import store_service_pb2_grpc as pb_grpc
from tests.conftest import CairnServer
from tests.integration.registry.conftest import ContainerTools, layout_blobs, registry_url

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "directory"


def test_records_are_listed_and_copied_out_with_skopeo(
    cairn_server: CairnServer, tools: ContainerTools, tmp_path: Path
) -> None:
    vectors = json.loads((VECTORS / "cids.json").read_text())["record_vectors"]
    with grpc.insecure_channel(cairn_server.grpc_addr) as channel:
        stub = pb_grpc.StoreServiceStub(channel)
        messages = []
        for vector in vectors:
            data = Struct()
            data.update(json.loads((VECTORS / vector["file"]).read_text()))
            messages.append(record_pb2.Record(data=data))
        cids = [answer.cid for answer in stub.Push(iter(messages))]
    assert cids == [v["cid"] for v in vectors]

    listed = requests.get(f"{cairn_server.http_url}/v2/dir/tags/list", timeout=10).json()
    assert listed == {"name": "dir", "tags": sorted(cids)}

    host = registry_url(cairn_server)
    layout = tmp_path / "layout"
    for vector in vectors:
        tools.skopeo("copy", "--src-tls-verify=false", f"docker://{host}/dir:{vector['cid']}",
                     f"oci:{layout}:{vector['cid']}")
        blobs = layout_blobs(layout)
        assert blobs[vector["digest"]].read_bytes() == vector["canonical_utf8"].encode()
    inspected = json.loads(tools.skopeo("inspect", "--tls-verify=false", "--raw",
                                        f"docker://{host}/dir:{cids[0]}").stdout)
    assert inspected["annotations"]["org.agntcy.dir/type"] == "record"
