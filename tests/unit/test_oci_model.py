"""The OCI model: references, descriptors and manifests parse strictly and keep exact bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.core.digest import Digest
from cairn.core.errors import InvalidArgumentError
from cairn.oci.model import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    Reference,
    mediatypes,
    parse_manifest,
    validate_repository,
    validate_tag,
)

D1 = Digest.of(b"one")
D2 = Digest.of(b"two")
D512 = Digest.of(b"one", "sha512")


# --- references -------------------------------------------------------------------------------

VALID_REFERENCES = [
    ("alpine", "docker.io", "library/alpine", None, None),
    ("alpine:3.19", "docker.io", "library/alpine", "3.19", None),
    ("user/app", "docker.io", "user/app", None, None),
    ("docker.io/alpine", "docker.io", "library/alpine", None, None),
    ("index.docker.io/user/app:v1", "docker.io", "user/app", "v1", None),
    ("localhost/foo", "localhost", "foo", None, None),
    ("localhost:5000/foo/bar:latest", "localhost:5000", "foo/bar", "latest", None),
    ("registry.example.com:443/a/b/c", "registry.example.com:443", "a/b/c", None, None),
    ("ghcr.io/org/img@" + str(D1), "ghcr.io", "org/img", None, D1),
    ("ghcr.io/org/img:tag@" + str(D512), "ghcr.io", "org/img", "tag", D512),
    ("127.0.0.1:5000/x", "127.0.0.1:5000", "x", None, None),
    ("a__b/c-d--e/f.g_h", "docker.io", "a__b/c-d--e/f.g_h", None, None),
    ("host.io/n:_Tag.1-x", "host.io", "n", "_Tag.1-x", None),
    ("localhost:5000", "docker.io", "library/localhost", "5000", None),
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), VALID_REFERENCES)
def test_reference_parse_valid(
    text: str, registry: str, repository: str, tag: str | None, digest: Digest | None
) -> None:
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert Reference.parse(str(ref)) == ref
    assert Reference.parse(ref.familiar()) == ref


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Alpine",
        "user/App",
        "example.com/Upper/x",
        "alpine:",
        "alpine:-bad",
        "alpine:" + "t" * 129,
        "alpine@sha256:abc",
        "alpine@md5:" + "0" * 32,
        "alpine@",
        "/alpine",
        "alpine/",
        "a//b",
        "a_-b",
        "-a",
        "example.com:port/x",
        "[::1]:5000/x",
        "a b",
        "0" * 64,
        "example.com/" + "a" * 250,
        "host:5000/",
    ],
)
def test_reference_parse_invalid(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        Reference.parse(text)


def test_reference_forms() -> None:
    ref = Reference.parse("alpine:3@" + str(D1))
    assert str(ref) == f"docker.io/library/alpine:3@{D1}"
    assert ref.familiar() == f"alpine:3@{D1}"
    assert ref.name == "docker.io/library/alpine"
    assert Reference.parse("user/app").tag_or_latest() == "latest"
    assert Reference.parse("user/app:v2").tag_or_latest() == "v2"
    assert Reference.parse("docker.io/a.b/c").familiar() == "docker.io/a.b/c"
    assert Reference.parse("quay.io/a/b:1").familiar() == "quay.io/a/b:1"
    assert Reference("index.docker.io", "alpine") == Reference.parse("alpine")


def test_validate_repository_and_tag() -> None:
    assert validate_repository("a/b-c/d.e") == "a/b-c/d.e"
    assert validate_tag("v1.0_rc-1") == "v1.0_rc-1"
    for bad in ["", "A", "a/", "a" * 256, "a:b", "a@b"]:
        with pytest.raises(InvalidArgumentError):
            validate_repository(bad)
    for bad in ["", ".x", "-x", "a" * 129, "a/b"]:
        with pytest.raises(InvalidArgumentError):
            validate_tag(bad)


_component = st.from_regex(r"[a-z0-9]{1,5}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,5}){0,2}", fullmatch=True)
_registry = st.sampled_from(["", "docker.io/", "index.docker.io/", "localhost:5000/", "r.example.com/"])
_tag = st.none() | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_digest = st.none() | st.builds(Digest.of, st.binary(max_size=8), st.sampled_from(["sha256", "sha512"]))


@given(_registry, st.lists(_component, min_size=1, max_size=4), _tag, _digest)
def test_reference_roundtrip(registry: str, path: list[str], tag: str | None, digest: Digest | None) -> None:
    if not registry and len(path) > 1 and "." in path[0]:
        registry = "docker.io/"  # without a registry, a dotted first component *is* the registry (as Docker)
    text = registry + "/".join(path)
    text += f":{tag}" if tag is not None else ""
    text += f"@{digest}" if digest is not None else ""
    ref = Reference.parse(text)
    assert Reference.parse(str(ref)) == ref
    assert Reference.parse(ref.familiar()) == ref
    assert ref.tag == tag and ref.digest == digest


@given(st.text(max_size=300))
def test_reference_parse_raises_only_invalid_argument(text: str) -> None:
    try:
        Reference.parse(text)
    except InvalidArgumentError:
        pass


# --- descriptors ------------------------------------------------------------------------------


def desc(media_type: str, digest: Digest = D1, size: int = 3, **more: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(digest), "size": size, **more}


def test_descriptor_roundtrip_keeps_unknown_fields() -> None:
    raw = desc(
        mediatypes.OCI_MANIFEST,
        artifactType="application/x",
        urls=["https://x/y"],
        annotations={"a": "b"},
        platform={
            "architecture": "arm64",
            "os": "linux",
            "variant": "v8",
            "os.features": ["f"],
            "os.version": "1",
            "vendor.x": 1,
        },
        data="e30=",
        **{"vendor.field": {"nested": True}},
    )
    d = Descriptor.from_dict(raw)
    assert d.platform == Platform("arm64", "linux", "1", ("f",), "v8", {"vendor.x": 1})
    assert d.extra == {"data": "e30=", "vendor.field": {"nested": True}}
    assert d.to_dict() == raw


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"digest": str(D1), "size": 1}, "descriptor.mediaType"),
        (desc("x", size=-1), "descriptor.size"),
        (desc("x", size=True), "descriptor.size"),
        (desc("x", size=1.5), "descriptor.size"),
        ({"mediaType": "x", "digest": "sha256:abc", "size": 1}, "descriptor.digest"),
        ({"mediaType": "x", "size": 1}, "descriptor.digest"),
        (desc("x", urls="http://x"), "descriptor.urls"),
        (desc("x", annotations={"a": 1}), "descriptor.annotations"),
        (desc("x", platform={"os": "linux"}), "descriptor.platform.architecture"),
        ([], "descriptor"),
    ],
)
def test_descriptor_invalid_names_the_field(raw: Any, field: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"^{field}: "):
        Descriptor.from_dict(raw)


# --- manifests --------------------------------------------------------------------------------

CONFIG = desc(mediatypes.OCI_CONFIG, D2, 10)
LAYER = desc(mediatypes.OCI_LAYER_GZIP, D1, 20)


def body(obj: dict[str, Any], indent: int | None = None) -> bytes:
    return json.dumps(obj, indent=indent).encode()


OCI_IMAGE = {"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "config": CONFIG, "layers": [LAYER]}
DOCKER_IMAGE = {
    "schemaVersion": 2,
    "mediaType": mediatypes.DOCKER_MANIFEST,
    "config": desc(mediatypes.DOCKER_CONFIG, D2, 10),
    "layers": [desc(mediatypes.DOCKER_LAYER, D1, 20)],
}
PLATFORM = {"architecture": "amd64", "os": "linux"}
OCI_INDEX = {
    "schemaVersion": 2,
    "mediaType": mediatypes.OCI_INDEX,
    "manifests": [desc(mediatypes.OCI_MANIFEST, D1, 5, platform=PLATFORM)],
}
DOCKER_LIST = {
    "schemaVersion": 2,
    "mediaType": mediatypes.DOCKER_MANIFEST_LIST,
    "manifests": [desc(mediatypes.DOCKER_MANIFEST, D1, 5, platform=PLATFORM)],
}
ARTIFACT = {
    "schemaVersion": 2,
    "mediaType": mediatypes.OCI_MANIFEST,
    "artifactType": "application/vnd.example.sbom",
    "config": desc(mediatypes.OCI_EMPTY, Digest.of(b"{}"), 2),
    "layers": [desc("application/json", D1, 3)],
    "subject": desc(mediatypes.OCI_MANIFEST, D2, 100),
    "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
}


@pytest.mark.parametrize(
    ("obj", "kind", "content_type"),
    [
        (OCI_IMAGE, ImageManifest, mediatypes.OCI_MANIFEST),
        (DOCKER_IMAGE, ImageManifest, mediatypes.DOCKER_MANIFEST),
        (OCI_INDEX, ImageIndex, mediatypes.OCI_INDEX),
        (DOCKER_LIST, ImageIndex, mediatypes.DOCKER_MANIFEST_LIST),
        (ARTIFACT, ImageManifest, mediatypes.OCI_MANIFEST + "; charset=utf-8"),
        (ARTIFACT, ImageManifest, None),
        ({k: v for k, v in OCI_INDEX.items() if k != "mediaType"}, ImageIndex, None),
        ({k: v for k, v in OCI_IMAGE.items() if k != "mediaType"}, ImageManifest, mediatypes.OCI_MANIFEST),
        ({"schemaVersion": 2, "config": CONFIG}, ImageManifest, None),
    ],
)
def test_parse_manifest_kinds(obj: dict[str, Any], kind: type, content_type: str | None) -> None:
    raw = body(obj)
    parsed = parse_manifest(raw, content_type)
    assert isinstance(parsed, kind)
    assert parsed.to_bytes() == raw
    assert parsed.digest == Digest.of(raw)
    assert parsed.digest_with("sha512") == Digest.of(raw, "sha512")
    assert parsed.to_dict() == ({"layers": [], **obj} if kind is ImageManifest else obj)


def test_manifest_fields_and_references() -> None:
    art = parse_manifest(body(ARTIFACT), mediatypes.OCI_MANIFEST)
    assert isinstance(art, ImageManifest)
    assert art.artifact_type == "application/vnd.example.sbom"
    assert art.subject is not None and art.subject.digest == D2
    assert art.effective_artifact_type() == "application/vnd.example.sbom"
    assert [d.media_type for d in art.references()] == [mediatypes.OCI_EMPTY, "application/json"]
    image = parse_manifest(body(OCI_IMAGE))
    assert isinstance(image, ImageManifest) and image.effective_artifact_type() == mediatypes.OCI_CONFIG
    index = parse_manifest(body(OCI_INDEX))
    assert isinstance(index, ImageIndex)
    assert index.references()[0].platform == Platform("amd64", "linux")


def test_digest_is_of_received_bytes_not_a_reencoding() -> None:
    pretty = body(OCI_IMAGE, indent=3) + b"\n\n   "
    parsed = parse_manifest(pretty, mediatypes.OCI_MANIFEST)
    assert parsed.to_bytes() == pretty
    assert parsed.digest == Digest.of(pretty)
    assert parsed.encode() != pretty
    assert parsed.digest != Digest.of(parsed.encode())
    assert parsed.size == len(pretty)


def test_unknown_fields_kept() -> None:
    obj = {**OCI_IMAGE, "vendor.custom": {"x": [1, 2]}, "config": {**CONFIG, "data": "e30="}}
    parsed = parse_manifest(body(obj))
    assert isinstance(parsed, ImageManifest)
    assert parsed.extra == {"vendor.custom": {"x": [1, 2]}}
    assert json.loads(parsed.encode()) == obj


def test_from_parts_is_canonical_and_reparses() -> None:
    config = Descriptor.from_dict(CONFIG)
    layer = Descriptor.from_dict(LAYER)
    built = ImageManifest.from_parts(config, [layer], annotations={"k": "v"})
    assert built.to_bytes() == built.encode()
    assert b" " not in built.to_bytes() and not built.to_bytes().endswith(b"\n")
    assert built.to_bytes().startswith(b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image')
    assert parse_manifest(built.to_bytes(), mediatypes.OCI_MANIFEST) == built
    index = ImageIndex.from_parts([Descriptor(mediatypes.OCI_MANIFEST, built.digest, built.size)])
    again = parse_manifest(index.to_bytes(), mediatypes.OCI_INDEX)
    assert again == index and again.digest == Digest.of(index.to_bytes())


@pytest.mark.parametrize(
    ("raw", "content_type", "field"),
    [
        (b"not json", None, "manifest"),
        (b"[]", None, "manifest"),
        (b"\xff\xfe\x00", None, "manifest"),
        (b"[" * 100000, None, "manifest"),
        (body({**OCI_IMAGE, "schemaVersion": 1}), None, "manifest.schemaVersion"),
        (body({**OCI_IMAGE, "schemaVersion": "2"}), None, "manifest.schemaVersion"),
        (body({**OCI_IMAGE, "schemaVersion": 2.0}), None, "manifest.schemaVersion"),
        (body({k: v for k, v in OCI_IMAGE.items() if k != "schemaVersion"}), None, "manifest.schemaVersion"),
        (body(OCI_IMAGE), mediatypes.OCI_INDEX, "manifest.mediaType"),
        (body(OCI_IMAGE), mediatypes.DOCKER_MANIFEST, "manifest.mediaType"),
        (
            body({k: v for k, v in DOCKER_IMAGE.items() if k != "mediaType"}),
            mediatypes.DOCKER_MANIFEST,
            "manifest.mediaType",
        ),
        (
            body({**OCI_IMAGE, "mediaType": mediatypes.DOCKER_SCHEMA1_SIGNED_MANIFEST}),
            None,
            "manifest.mediaType",
        ),
        (body({**OCI_IMAGE, "mediaType": 7}), None, "manifest.mediaType"),
        (body({k: v for k, v in OCI_IMAGE.items() if k != "config"}), None, "manifest.config"),
        (body({**OCI_IMAGE, "layers": {}}), None, "manifest.layers"),
        (body({**OCI_IMAGE, "layers": [{**LAYER, "size": -5}]}), None, r"manifest.layers\[0\].size"),
        (
            body({**OCI_IMAGE, "layers": [LAYER, {**LAYER, "digest": "sha256:x"}]}),
            None,
            r"manifest.layers\[1\].digest",
        ),
        (body({**OCI_IMAGE, "subject": "x"}), None, "manifest.subject"),
        (body({**OCI_IMAGE, "artifactType": 1}), None, "manifest.artifactType"),
        (body({**OCI_IMAGE, "annotations": []}), None, "manifest.annotations"),
        (
            body({k: v for k, v in OCI_INDEX.items() if k != "manifests"}),
            mediatypes.OCI_INDEX,
            "manifest.manifests",
        ),
    ],
)
def test_parse_manifest_invalid_names_the_field(raw: bytes, content_type: str | None, field: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"^{field}"):
        parse_manifest(raw, content_type)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_keys = st.sampled_from(
    [
        "schemaVersion",
        "mediaType",
        "config",
        "layers",
        "manifests",
        "subject",
        "annotations",
        "artifactType",
        "digest",
        "size",
        "platform",
        "urls",
    ]
)
_shaped = st.dictionaries(_keys, _json | st.just(2) | st.just(CONFIG) | st.just([LAYER]), max_size=8)


@given(
    st.binary(max_size=200) | _shaped.map(body),
    st.none() | st.sampled_from(sorted(mediatypes.MANIFEST_TYPES)),
)
def test_parse_manifest_raises_only_invalid_argument(raw: bytes, content_type: str | None) -> None:
    try:
        parsed = parse_manifest(raw, content_type)
    except InvalidArgumentError:
        return
    assert parsed.to_bytes() == raw
