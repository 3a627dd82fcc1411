"""Progress streams of Pull, Push and Build: Docker v24's vocabulary in causal order, per id
``current <= total``, counters that only grow, live delivery, and the final state last
(image-service.md 5.1, 5.2, 5.8; the invariants pinned in the design notes).
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TypeAlias

import grpc
import pytest

from cairn.api.grpc.gen.arcbox.v1 import image_pb2 as pb
from cairn.api.grpc.gen.arcbox.v1 import image_pb2_grpc as pb_grpc
from tests.integration.images.conftest import (
    RPC_TIMEOUT,
    BuildParams,
    ImageSet,
    SourceRegistry,
    build,
    pull,
    push,
    stream_text,
    tag,
)
from tests.integration.images.layouts import Image
from tests.integration.images.proxy import ByteCountingProxy
from tests.integration.registry.conftest import DockerRegistry, sha256

PULL_ORDER = ["Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum", "Download complete",
              "Extracting", "Pull complete"]
PUSH_FINAL = re.compile(r"^(Pushed|Layer already exists|Mounted from .+)$")
Message: TypeAlias = pb.PullProgress | pb.PushProgress


def short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def by_id(messages: Iterable[Message], ids: Iterable[str]) -> dict[str, list[Message]]:
    wanted = set(ids)
    out: dict[str, list[Message]] = defaultdict(list)
    for m in messages:
        if m.id in wanted:
            out[m.id].append(m)
    return out


def assert_counters(messages: Sequence[Message], status: str) -> None:
    """``current`` never exceeds ``total`` and never goes back, for one id's ``status`` messages."""
    values = [(m.current, m.total) for m in messages if m.status == status]
    for current, total in values:
        assert current >= 0 and (total == 0 or current <= total), (status, values)
    currents = [c for c, _ in values]
    assert currents == sorted(currents), (status, currents)


def assert_all_bounded(messages: Iterable[Message]) -> None:
    for m in messages:
        assert m.current >= 0 and m.total >= 0, m
        if m.total > 0:
            assert m.current <= m.total, m


def check_pull_progress(messages: list[pb.PullProgress], reference: str, image: Image, digest: str,
                        tag_or_digest: str) -> None:
    repo_path = reference.split("/", 1)[1].rsplit(":", 1)[0]
    repo = reference.rsplit(":", 1)[0]
    assert messages[0].id == tag_or_digest
    assert messages[0].status in (f"Pulling from {repo_path}", f"Pulling from {repo}"), messages[0]
    assert_all_bounded(messages)

    layers = {short(entry.blob.digest): entry.blob for entry in image.layers}
    groups = by_id(messages, layers)
    assert set(groups) == set(layers), f"layer ids: {sorted(groups)} != {sorted(layers)}"
    for layer_id, group in groups.items():
        statuses = [m.status for m in group if not m.status.startswith("Retrying in")]
        if statuses == ["Already exists"]:
            continue
        unknown = [s for s in statuses if s not in PULL_ORDER]
        assert not unknown, f"{layer_id}: unknown statuses {unknown}"
        ranks = [PULL_ORDER.index(s) for s in statuses]
        assert ranks == sorted(ranks), f"{layer_id}: out of order {statuses}"
        assert statuses[0] == "Pulling fs layer" and statuses[-1] == "Pull complete", statuses
        assert "Download complete" in statuses, statuses
        assert_counters(group, "Downloading")
        assert_counters(group, "Extracting")
        for m in group:
            if m.status == "Downloading" and m.total:
                assert m.total == layers[layer_id].size, m
                assert m.progress.startswith("["), m  # Docker's rendered bar

    # Layer lines only between the first line and the final two.
    assert all(m.id not in layers for m in messages[-2:])
    assert messages[-2].status == f"Digest: {digest}"
    assert messages[-1].status.startswith("Status: ")
    assert messages[-1].status.endswith(f" for {reference}")


def test_pull_progress(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry,
                       image_set: ImageSet) -> None:
    ref = source_registry.busybox
    messages = pull(images, ref)
    check_pull_progress(messages, ref, image_set.busybox, image_set.busybox.manifest.digest, "v1")
    assert messages[-1].status == f"Status: Downloaded newer image for {ref}"

    # The same layers under another name: each layer "Already exists" and nothing is fetched.
    other = source_registry.busybox_v2s2
    again = pull(images, other)
    check_pull_progress(again, other, image_set.busybox, source_registry.v2s2_digest, "v1")
    layers = {short(entry.blob.digest) for entry in image_set.busybox.layers}
    assert {m.id: m.status for m in again if m.id in layers} == dict.fromkeys(layers, "Already exists")
    assert again[-1].status == f"Status: Downloaded newer image for {other}"

    up_to_date = pull(images, ref)
    assert up_to_date[-1].status == f"Status: Image is up to date for {ref}"


def test_pull_by_digest_progress(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry,
                                 image_set: ImageSet) -> None:
    digest = image_set.busybox.manifest.digest
    ref = f"{source_registry.host}/lib/busybox@{digest}"
    messages = pull(images, ref)
    assert messages[0].id == digest
    assert messages[-1].status == f"Status: Downloaded newer image for {ref}"


def test_pull_progress_is_live(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry,
                               image_set: ImageSet) -> None:
    """Messages arrive while the layer downloads (throttled to ~2 s), not all at the end."""
    layer = image_set.resume.layers[0].blob
    with ByteCountingProxy(source_registry.registry.port) as proxy:
        proxy.rate = layer.size / 2.0
        ref = f"{proxy.host}/resume/big:v1"
        arrivals: list[tuple[float, pb.PullProgress]] = []
        for message in images.Pull(pb.PullImageRequest(reference=ref), timeout=RPC_TIMEOUT):
            arrivals.append((time.monotonic(), message))
    messages = [m for _, m in arrivals]
    check_pull_progress(messages, ref, image_set.resume, image_set.resume.manifest.digest, "v1")
    downloading = [(t, m) for t, m in arrivals if m.id == short(layer.digest) and m.status == "Downloading"]
    assert len(downloading) >= 3, "expected several Downloading updates for a 24 MiB layer"
    assert downloading[-1][0] - downloading[0][0] > 0.5, "Downloading updates arrived in one burst"
    assert downloading[0][1].current < layer.size // 2


def check_push_progress(messages: list[pb.PushProgress], reference: str, image: Image,
                        served_manifest: bytes) -> dict[str, str]:
    """Checks the push stream; returns each layer's final status."""
    repo, tag_ = reference.rsplit(":", 1)
    assert messages[0].status == f"The push refers to repository [{repo}]", messages[0]
    assert_all_bounded(messages)
    layers = {short(diff_id) for diff_id in image.diff_ids}  # push ids are DiffIDs
    groups = by_id(messages, layers)
    assert set(groups) == layers
    finals = {}
    for layer_id, group in groups.items():
        statuses = [m.status for m in group if not m.status.startswith("Retrying in")]
        assert statuses[0] == "Preparing", statuses
        assert PUSH_FINAL.match(statuses[-1]), statuses
        assert set(statuses[1:-1]) <= {"Waiting", "Pushing"}, statuses
        if "Waiting" in statuses and "Pushing" in statuses:
            assert statuses.index("Waiting") < statuses.index("Pushing"), statuses
        assert_counters(group, "Pushing")
        finals[layer_id] = statuses[-1]
    assert messages[-1].status == (
        f"{tag_}: digest: {sha256(served_manifest)} size: {len(served_manifest)}")
    return finals


def test_push_progress(images: pb_grpc.ImageServiceStub, source_registry: SourceRegistry,
                       fresh_registry: DockerRegistry, image_set: ImageSet) -> None:
    pull(images, source_registry.busybox)
    target = f"{fresh_registry.host}/progress/busybox:v1"
    tag(images, source_registry.busybox, target)
    manifest = image_set.busybox.manifest.data
    first = check_push_progress(push(images, target), target, image_set.busybox, manifest)
    assert set(first.values()) == {"Pushed"}, first
    second = check_push_progress(push(images, target), target, image_set.busybox, manifest)
    assert set(second.values()) == {"Layer already exists"}, second


def test_build_progress(images: pb_grpc.ImageServiceStub) -> None:
    dockerfile = ("FROM scratch\nLABEL a=b\nCOPY one.txt /one.txt\nENV X=1\nCOPY two.txt /two.txt\n"
                  "CMD [\"/one.txt\"]\n")
    messages = build(images, {"Dockerfile": dockerfile, "one.txt": "1\n", "two.txt": "2\n"},
                     BuildParams(tags=["progress/built:v1", "progress/built:v2"]))
    assert not [m.error for m in messages if m.error]
    for m in messages:
        if m.stream:
            assert m.stream.endswith("\n"), m
    text = stream_text(messages)
    numbers = [(int(n), int(total)) for n, total in re.findall(r"^Step (\d+)/(\d+) : ", text, re.M)]
    assert numbers == [(n, 6) for n in range(1, 7)]
    # Each step after FROM scratch ends in its image's short ID before the next Step line.
    parts = re.split(r"^Step \d+/\d+ : .*\n", text, flags=re.M)
    assert parts[0] == ""
    for part in parts[2:]:
        assert re.search(r"^ ---> [0-9a-f]{12}\n", part, re.M), part
    image_id = messages[-1].aux
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id), messages[-1]
    tail = text[text.index("Successfully built"):]
    assert tail == (f"Successfully built {short(image_id)}\n"
                    "Successfully tagged progress/built:v1\nSuccessfully tagged progress/built:v2\n")
    assert [m.aux for m in messages if m.aux] == [image_id]


def test_progress_of_concurrent_pulls_stays_per_call(images: pb_grpc.ImageServiceStub,
                                                     source_registry: SourceRegistry,
                                                     image_set: ImageSet) -> None:
    """Two pulls at once: each stream tells its own story, complete and in order."""
    refs = [source_registry.busybox, source_registry.dated(2021)]
    results: dict[str, list[pb.PullProgress] | BaseException] = {}

    def run(ref: str) -> None:
        try:
            results[ref] = pull(images, ref)
        except grpc.RpcError as exc:
            results[ref] = exc

    threads = [threading.Thread(target=run, args=(ref,)) for ref in refs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(RPC_TIMEOUT)
    for ref, image in zip(refs, [image_set.busybox, image_set.dated[2021]], strict=True):
        messages = results[ref]
        assert isinstance(messages, list), messages
        check_pull_progress(messages, ref, image, image.manifest.digest, ref.rsplit(":", 1)[1])


@pytest.mark.parametrize("which", ["pull", "push"])
def test_failed_stream_ends_with_status_not_text(which: str, shared_images: pb_grpc.ImageServiceStub,
                                                 fresh_registry: DockerRegistry) -> None:
    """Failures end the stream with a non-OK status; no ``Error:`` item is sent (DECISIONS 2)."""
    ref = f"{fresh_registry.host}/absent/image:v1"
    call = (shared_images.Pull(pb.PullImageRequest(reference=ref), timeout=RPC_TIMEOUT) if which == "pull"
            else shared_images.Push(pb.PushImageRequest(reference=ref), timeout=RPC_TIMEOUT))
    received = []
    with pytest.raises(grpc.RpcError) as info:
        for message in call:
            received.append(message)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert not [m for m in received if m.status.lower().startswith("error")]
