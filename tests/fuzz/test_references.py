"""Names from untrusted text: image references, repository and tag names, containerd namespaces.

Each parser refuses with InvalidArgumentError (the registry's checks with their OCI
kinds, which subclass it) and nothing else; what it accepts is in canonical form,
so parsing the printed form gives the same value (idempotence), and an accepted
name never holds a character that could reach a path or a header (``/..``, NUL,
newline, upper case in repositories).
"""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from cairn.core.content.model import validate_namespace
from cairn.core.errors import InvalidArgumentError
from cairn.images.references import parse_reference, repo_tag
from cairn.oci.errors import NameInvalidError, TagInvalidError
from cairn.oci.model import Reference, validate_repository, validate_tag
from cairn.oci.registry.names import check_repository, check_tag, parse_digest
from tests.fuzz.budget import budget, tried

# Pieces that real references are made of, and the characters that break them.
_PIECES = ["a", "b0", "docker.io", "localhost", "localhost:5000", "index.docker.io", "ghcr.io", "library",
           "/", "//", ":", "@", ".", "..", "_", "__", "-", "latest", "v1.2", "sha256:" + "0" * 64,
           "A", "\n", "\x00", " ", "é", "[::1]", "%2F", "\\"]
reference_like = st.lists(st.sampled_from(_PIECES), max_size=10).map("".join)
UNSAFE = re.compile(r"[\x00-\x20\\%]|(^|/)\.\.?(/|$)")


@budget(400)
@given(st.one_of(reference_like, st.text(max_size=80)))
@example("alpine\n")
@example("ALPINE")
@example("a" * 300)
def test_reference_parse_is_canonical_or_refused(text: str) -> None:
    tried("reference")
    try:
        ref = Reference.parse(text)
    except InvalidArgumentError:
        return
    assert not UNSAFE.search(ref.name), ref
    assert Reference.parse(str(ref)) == ref
    assert Reference.parse(ref.familiar()) == ref
    assert str(Reference.parse(str(ref))) == str(ref)


@budget(200)
@given(st.one_of(reference_like, st.text(max_size=60)))
def test_image_reference_parse_uses_docker_wording(text: str) -> None:
    tried("reference")
    try:
        ref = parse_reference(text)
    except InvalidArgumentError as exc:
        assert exc.message.startswith("invalid reference format")
        return
    assert parse_reference(repo_tag(ref)).name == ref.name


@budget(300)
@given(st.one_of(reference_like, st.text(max_size=300)))
@example("a/b\n")
def test_repository_names(text: str) -> None:
    tried("repository-name")
    try:
        name = check_repository(text)
    except NameInvalidError as exc:
        assert isinstance(exc, InvalidArgumentError)
        return
    assert name == text == validate_repository(text)
    assert len(name) <= 255
    assert not UNSAFE.search(name) and name == name.lower()


@budget(300)
@given(st.one_of(reference_like, st.text(max_size=140)))
@example("latest\n")
def test_tags(text: str) -> None:
    tried("tag")
    try:
        tag = check_tag(text)
    except TagInvalidError:
        return
    assert tag == validate_tag(text)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag), tag


@budget(200)
@given(st.one_of(reference_like, st.text(max_size=140)))
def test_registry_digest_parameter(text: str) -> None:
    tried("digest")
    try:
        digest = parse_digest(text)
    except InvalidArgumentError:
        return
    assert str(digest) == text


@budget(200)
@given(st.one_of(st.text(max_size=90), st.lists(st.sampled_from(["a", "B9", ".", "_", "-", "\n", "/"]),
                                                  max_size=12).map("".join)))
# Found by this property: a containerd namespace could end in a newline ("$" matched before it).
@example("default\n")
def test_containerd_namespaces(text: str) -> None:
    tried("namespace")
    try:
        namespace = validate_namespace(text)
    except InvalidArgumentError:
        return
    assert re.fullmatch(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*", namespace) and len(namespace) <= 76
