"""Platform strings as pull receives them and index entries carry them, normalised like containerd."""

from __future__ import annotations

import pytest

from cairn.core.errors import InvalidArgumentError
from cairn.images import platform as platform_module
from cairn.images.platform import Platform, normalize_arch
from cairn.oci.model import Platform as OciPlatform


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/x86-64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("linux/arm64", "linux/arm64/v8"),
        ("linux/aarch64", "linux/arm64/v8"),
        ("linux/arm64/v8", "linux/arm64/v8"),
        ("linux/arm64/8", "linux/arm64/v8"),
        ("linux/arm64/v9.0", "linux/arm64/v9"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/7", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6"),
        ("linux/arm/5", "linux/arm/v5"),
        ("linux/i386", "linux/386"),
        ("linux/386", "linux/386"),
        ("linux/s390x", "linux/s390x"),
        ("linux/ppc64le", "linux/ppc64le"),
        ("linux/riscv64", "linux/riscv64"),
        ("LINUX/AMD64", "linux/amd64"),
        ("windows/amd64", "windows/amd64"),
        ("macos/arm64", "darwin/arm64/v8"),
        (" linux/arm64 ", "linux/arm64/v8"),
    ],
)
def test_parse_normalises_like_containerd(text: str, expected: str) -> None:
    assert str(Platform.parse(text)) == expected
    assert str(platform_module.parse(text)) == expected


def test_a_lone_architecture_takes_the_host_os() -> None:
    assert Platform.parse("arm64") == Platform("linux", "arm64", "v8")
    assert Platform.parse("aarch64") == Platform("linux", "arm64", "v8")
    assert Platform.parse("armhf") == Platform("linux", "arm", "v7")


def test_a_lone_os_takes_the_host_architecture() -> None:
    here = Platform.host()
    assert Platform.parse("linux") == Platform("linux", here.architecture, here.variant)


@pytest.mark.parametrize(
    "text", ["", "  ", "linux/", "/amd64", "linux/amd64/v8/extra", "linux//v7", "nonsense", "linux/amd 64"]
)
def test_malformed_platforms_are_invalid_arguments(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        Platform.parse(text)


def test_host_is_normalised() -> None:
    here = Platform.host()
    assert here == Platform.of(here.os, here.architecture, here.variant)
    assert here.architecture not in ("x86_64", "aarch64", "armhf", "i386")
    assert platform_module.host() == here


@pytest.mark.parametrize(
    ("arch", "variant", "expected"),
    [
        ("x86_64", None, ("amd64", None)),
        ("aarch64", None, ("arm64", "v8")),
        ("arm64", "v8.0", ("arm64", "v8")),
        ("armhf", None, ("arm", "v7")),
        ("armel", None, ("arm", "v6")),
        ("arm", None, ("arm", "v7")),
        ("arm", "8", ("arm", "v8")),
        ("i386", None, ("386", None)),
        ("mips64le", None, ("mips64le", None)),
    ],
)
def test_normalize_arch(arch: str, variant: str | None, expected: tuple[str, str | None]) -> None:
    assert normalize_arch(arch, variant) == expected


def test_matching_normalises_the_index_entry() -> None:
    wanted = Platform.parse("linux/arm64")
    assert wanted.matches(OciPlatform(architecture="arm64", os="linux"))
    assert wanted.matches(OciPlatform(architecture="arm64", os="linux", variant="v8"))
    assert wanted.matches(OciPlatform(architecture="aarch64", os="Linux"))
    assert not wanted.matches(OciPlatform(architecture="arm64", os="linux", variant="v9"))
    assert not wanted.matches(OciPlatform(architecture="amd64", os="linux"))
    assert not wanted.matches(OciPlatform(architecture="arm64", os="windows"))
    assert Platform.parse("linux/arm").matches(OciPlatform(architecture="arm", os="linux"))
    assert Platform.parse("linux/amd64").matches(OciPlatform(architecture="x86_64", os="linux", variant="v1"))
    assert Platform.parse("linux/amd64").matches(Platform.parse("linux/x86_64"))


def _entries(*specs: str | None) -> list[OciPlatform | None]:
    out: list[OciPlatform | None] = []
    for spec in specs:
        if spec is None:
            out.append(None)
            continue
        parts = spec.split("/")
        out.append(OciPlatform(architecture=parts[1], os=parts[0], variant=parts[2] if len(parts) > 2 else None))
    return out


def test_best_prefers_the_exact_match() -> None:
    entries = _entries("linux/amd64", "linux/arm/v7", "linux/arm64/v8", "linux/arm/v8")
    assert Platform.parse("linux/arm64").best(entries) == 2
    assert Platform.parse("linux/amd64").best(entries) == 0
    assert Platform.parse("linux/arm/v7").best(entries) == 1


def test_best_falls_back_to_compatible_variants() -> None:
    entries = _entries("linux/amd64", "linux/arm/v5", "linux/arm/v6")
    assert Platform.parse("linux/arm/v7").best(entries) == 2
    assert Platform.parse("linux/arm64").best(entries) == 2
    assert Platform.parse("linux/arm/v6").best(entries) == 2
    assert Platform.parse("linux/arm/v5").best(entries) == 1
    assert Platform.parse("linux/amd64/v3").best(_entries("linux/amd64", "linux/amd64/v2")) == 1


def test_best_finds_nothing_for_an_unlisted_platform() -> None:
    entries = _entries(None, "linux/amd64", "unknown/unknown", "linux/arm/v7")
    assert Platform.parse("linux/s390x").best(entries) is None
    assert Platform.parse("linux/arm/v6").best(entries) is None  # v6 cannot run v7
    assert Platform.parse("windows/amd64").best(entries) is None
    assert Platform.parse("linux/amd64").best([]) is None


def test_the_first_of_equal_entries_wins() -> None:
    assert Platform.parse("linux/amd64").best(_entries("linux/arm64", "linux/amd64", "linux/x86_64")) == 1


def test_str_is_dockers_form() -> None:
    assert str(Platform("linux", "arm64", "v8")) == "linux/arm64/v8"
    assert str(Platform("linux", "amd64")) == "linux/amd64"
    assert (
        f"no matching manifest for {Platform.parse('linux/arm64')} in the manifest list entries"
        == "no matching manifest for linux/arm64/v8 in the manifest list entries"
    )
