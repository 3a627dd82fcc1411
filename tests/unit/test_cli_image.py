"""``cairn image``: the pure parts (auth encoding, .dockerignore, context tars, tables, units,
progress displays) and the commands against an in-process fake ``ImageService``.

The fake servicer checks what the client sends (metadata, chunking, eof) and
answers canned messages, so these tests need no store and no registry; the
real server is exercised by ``tests/integration/images``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner

from cairn.api.grpc.gen.arcbox.v1 import common_pb2
from cairn.api.grpc.gen.arcbox.v1 import image_pb2 as pb
from cairn.api.grpc.gen.arcbox.v1 import image_pb2_grpc as pb_grpc
from cairn.cli import image_context
from cairn.cli.image_auth import Credentials, credentials_from_file, encode_auth
from cairn.cli.image_context import (
    BuildContextSpec,
    ContextStream,
    IgnoreRules,
    build_metadata,
    parse_build_args,
    prepare_context,
    write_context,
)
from cairn.cli.image_output import (
    created_since,
    docker_size,
    human_duration,
    image_rows,
    info_record,
    short_id,
    split_target,
    summary_record,
)
from cairn.cli.image_progress import BuildDisplay, TransferDisplay
from cairn.cli.main import cli
from cairn.core.errors import CairnError, FailedPreconditionError, InvalidArgumentError, NotFoundError
from cairn.images.credentials import decode_auth
from cairn.oci.model import Reference

ID = "sha256:" + "ab" * 32
ID2 = "sha256:" + "cd" * 32


# -- auth --------------------------------------------------------------------------------------
def decode(value: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(value))
    return decoded


def test_auth_is_docker_x_registry_auth() -> None:
    credentials = Credentials(username="me", password="s3cr?t>>", server_address="registry.example")
    value = encode_auth(credentials)
    raw = base64.urlsafe_b64decode(value)
    # Go's json.Marshal field order, empty fields left out, URL-safe alphabet with padding
    assert raw == b'{"username":"me","password":"s3cr?t>>","serveraddress":"registry.example"}'
    assert "+" not in value and "/" not in value and len(value) % 4 == 0
    assert decode_auth(value) == credentials  # what the server reads back


def test_auth_carries_tokens() -> None:
    value = encode_auth(Credentials(identity_token="refresh", server_address="docker.io"))
    assert decode(value) == {"serveraddress": "docker.io", "identitytoken": "refresh"}


def auth_file(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps(document))
    return path


def basic(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def lookup(path: Path, reference: str) -> Credentials | None:
    return credentials_from_file(path, Reference.parse(reference))


def test_auth_file_docker_hub_key(tmp_path: Path) -> None:
    path = auth_file(tmp_path, {"auths": {"https://index.docker.io/v1/": basic("hub", "pw")}})
    assert lookup(path, "alpine:3") == Credentials(username="hub", password="pw", server_address="docker.io")
    assert lookup(path, "quay.io/x/y") is None


def test_auth_file_most_specific_key_wins(tmp_path: Path) -> None:
    path = auth_file(
        tmp_path,
        {
            "auths": {
                "quay.io": basic("any", "1"),
                "quay.io/team": basic("team", "2"),
                "https://localhost:5000": basic("local", "3"),
            }
        },
    )
    found = lookup(path, "quay.io/team/app:1")
    assert found is not None and (found.username, found.server_address) == ("team", "quay.io")
    found = lookup(path, "quay.io/other/app")
    assert found is not None and found.username == "any"
    found = lookup(path, "localhost:5000/app")
    assert found is not None and (found.username, found.server_address) == ("local", "localhost:5000")


def test_auth_file_tokens(tmp_path: Path) -> None:
    path = auth_file(tmp_path, {"auths": {"t.example": {"identitytoken": "tok"}}})
    assert lookup(path, "t.example/a") == Credentials(identity_token="tok", server_address="t.example")


def test_auth_file_credential_helpers_are_named(tmp_path: Path) -> None:
    path = auth_file(tmp_path, {"auths": {"https://index.docker.io/v1/": {}}, "credsStore": "desktop"})
    with pytest.raises(InvalidArgumentError, match="credential helper 'desktop'"):
        lookup(path, "alpine")
    helpers = auth_file(tmp_path, {"credHelpers": {"gcr.io": "gcloud"}})
    with pytest.raises(InvalidArgumentError, match="'gcloud'"):
        lookup(helpers, "gcr.io/p/app")
    assert lookup(helpers, "quay.io/p/app") is None


@pytest.mark.parametrize(
    "document",
    [[], {"auths": []}, {"auths": {"r.example": {"auth": "!!!"}}}, {"auths": {"r.example": "x"}}],
)
def test_auth_file_malformed(tmp_path: Path, document: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        lookup(auth_file(tmp_path, document), "r.example/a")


# -- .dockerignore -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["*.go"], "a.go", True),
        (["*.go"], "dir/a.go", False),
        (["**/*.go"], "dir/sub/a.go", True),
        (["**/*.go"], "a.go", True),
        (["dir"], "dir/sub/file", True),
        (["dir/"], "dir/file", True),
        (["/dir"], "dir/file", True),
        (["./dir/../other"], "other", True),
        (["dir/**"], "dir/a/b", True),
        (["dir/**"], "dirx", False),
        (["a?c"], "abc", True),
        (["a?c"], "a/c", False),
        (["[ab].txt"], "b.txt", True),
        (["*.md", "!README.md"], "README.md", False),
        (["*.md", "!README.md"], "NOTES.md", True),
        (["*.md", "!README.md", "README*"], "README.md", True),
        (["docs", "!docs/keep"], "docs/keep", False),
        (["docs", "!docs/keep"], "docs/drop", True),
        ([r"\*"], "*", True),
        ([r"\*"], "x", False),
        (["**"], "anything/at/all", True),
    ],
)
def test_dockerignore_rules(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnoreRules.parse("\n".join(patterns)).excludes(path) is excluded


def test_dockerignore_parse_skips_comments_and_blanks() -> None:
    rules = IgnoreRules.parse("# comment\n\n  build  \n!  build/keep\n")
    assert rules.patterns == ("build", "!build/keep")
    assert rules.may_reinclude_under("build")
    assert not rules.may_reinclude_under("other")


# -- context tar -------------------------------------------------------------------------------
def make_context(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "node_modules").mkdir()
    (root / "node_modules" / "big.js").write_text("//" * 100)
    (root / "notes.md").write_text("notes")
    (root / "README.md").write_text("readme")
    (root / "link").symlink_to("src/main.py")
    os.chmod(root / "src" / "main.py", 0o755)
    (root / ".dockerignore").write_text("node_modules\n*.md\n!README.md\nDockerfile\n")
    return root


def tar_names(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_context_tar_is_what_docker_sends(tmp_path: Path) -> None:
    spec = prepare_context(make_context(tmp_path), None)
    assert spec.dockerfile == "Dockerfile"
    out = io.BytesIO()
    write_context(spec, out)
    members = tar_names(out.getvalue())
    assert list(members) == [
        ".dockerignore",
        "Dockerfile",  # ignored in .dockerignore, sent anyway
        "README.md",
        "link",
        "src",
        "src/main.py",
        "src/pkg",
        "src/pkg/mod.py",
    ]
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" for m in members.values())
    assert members["link"].issym() and members["link"].linkname == "src/main.py"
    assert members["src/main.py"].mode & 0o777 == 0o755
    assert members["src"].isdir()


def test_dockerfile_inside_context_by_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_context(tmp_path)
    (root / "docker").mkdir()
    (root / "docker" / "app.Dockerfile").write_text("FROM scratch\n")
    monkeypatch.chdir(root / "src")  # -f is relative to the current directory, as in docker
    spec = prepare_context(root, "../docker/app.Dockerfile")
    assert spec.dockerfile == "docker/app.Dockerfile"
    assert not spec.extra


def test_dockerfile_outside_context_is_added(tmp_path: Path) -> None:
    root = make_context(tmp_path)
    outside = tmp_path / "Other.Dockerfile"
    outside.write_text("FROM busybox\n")
    spec = prepare_context(root, str(outside))
    assert spec.dockerfile.startswith(".dockerfile.") and len(spec.dockerfile) == len(".dockerfile.") + 12
    out = io.BytesIO()
    write_context(spec, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        member = tar.extractfile(spec.dockerfile)
        assert member is not None and member.read() == b"FROM busybox\n"


def test_dockerfile_from_stdin(tmp_path: Path) -> None:
    spec = prepare_context(make_context(tmp_path), "-", read_stdin=lambda: b"FROM alpine\n")
    assert spec.extra == {spec.dockerfile: b"FROM alpine\n"}


@pytest.mark.parametrize("dockerfile", [None, "nope/Dockerfile"])
def test_missing_dockerfile_or_context(tmp_path: Path, dockerfile: str | None) -> None:
    with pytest.raises(InvalidArgumentError, match="Cannot locate specified Dockerfile"):
        prepare_context(tmp_path, dockerfile)
    with pytest.raises(InvalidArgumentError, match="unable to prepare context"):
        prepare_context(tmp_path / "absent", dockerfile)


def test_context_stream_chunks_and_eof(tmp_path: Path) -> None:
    root = make_context(tmp_path)
    (root / "blob.bin").write_bytes(os.urandom(300_000))
    spec = prepare_context(root, None)
    whole = io.BytesIO()
    write_context(spec, whole)
    stream = ContextStream(spec, chunk_size=64 * 1024)
    chunks = list(stream.chunks())
    stream.stop()
    assert b"".join(data for data, _ in chunks) == whole.getvalue()
    assert [eof for _, eof in chunks] == [False] * (len(chunks) - 1) + [True]
    assert all(len(data) == 64 * 1024 for data, _ in chunks[:-1])
    assert stream.bytes_sent == len(whole.getvalue()) and stream.error is None


def test_context_stream_failure_has_no_eof(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(spec: BuildContextSpec, out: Any) -> None:
        out.write(b"x" * 5000)
        raise InvalidArgumentError("cannot read secret: Permission denied")

    monkeypatch.setattr(image_context, "write_context", failing)
    called = threading.Event()
    stream = ContextStream(
        prepare_context(make_context(tmp_path), None), chunk_size=1024, on_error=called.set
    )
    chunks = list(stream.chunks())
    assert all(not eof for _, eof in chunks)
    assert isinstance(stream.error, InvalidArgumentError) and called.is_set()


def test_build_metadata_and_args() -> None:
    args = parse_build_args(["A=1", "B=", "FROM_ENV", "UNSET"], {"FROM_ENV": "env"})
    assert args == {"A": "1", "B": "", "FROM_ENV": "env"}
    pairs = build_metadata(
        dockerfile="sub/Dockerfile",
        tags=["app:1", "app:latest"],
        build_args=args,
        target="final",
        platform="linux/arm64",
        no_cache=True,
    )
    assert pairs == [
        ("dockerfile", "sub/Dockerfile"),
        ("tag", "app:1"),
        ("tag", "app:latest"),
        ("build-arg", "A=1"),
        ("build-arg", "B="),
        ("build-arg", "FROM_ENV=env"),
        ("target", "final"),
        ("platform", "linux/arm64"),
        ("no-cache", "true"),
    ]
    assert build_metadata(dockerfile="Dockerfile") == [("dockerfile", "Dockerfile")]
    with pytest.raises(InvalidArgumentError, match="printable ASCII"):
        build_metadata(dockerfile="Dockerfile", build_args={"GREETING": "grüß"})
    with pytest.raises(InvalidArgumentError):
        parse_build_args(["=x"], {})


# -- tables and units --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (7_050_000, "7.05MB"),
        (77_800_000, "77.8MB"),
        (1_234_567_890, "1.23GB"),
    ],
)
def test_docker_size(size: int, text: str) -> None:
    assert docker_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (300, "5 minutes"),
        (3600, "About an hour"),
        (5 * 3600, "5 hours"),
        (3 * 86400, "3 days"),
        (15 * 86400, "2 weeks"),
        (90 * 86400, "3 months"),
        (3 * 365 * 86400, "3 years"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text
    assert created_since(1000, now=1000 + seconds) == text + " ago"


def test_short_id_and_target() -> None:
    assert short_id(ID) == "ab" * 6
    assert short_id(ID, no_trunc=True) == ID
    assert split_target("app") == ("app", "")
    assert split_target("team/app:v1") == ("team/app", "v1")
    assert split_target("localhost:5000/app") == ("localhost:5000/app", "")
    assert split_target("localhost:5000/app:2") == ("localhost:5000/app", "2")
    assert split_target("app@sha256:" + "a" * 64) == ("app@sha256:" + "a" * 64, "")


def summary(**fields: Any) -> pb.ImageSummary:
    values: dict[str, Any] = {"id": ID, "created": 1, "size": 7_050_000, "virtual_size": 7_050_000}
    return pb.ImageSummary(**{**values, **fields})


def row_tuples(images: list[pb.ImageSummary], digests: bool) -> list[tuple[str, str, str]]:
    return [(r.repository, r.tag, r.digest) for r in image_rows(images, digests)]


def test_image_rows_like_docker_images() -> None:
    d1, d2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    image = summary(
        repo_tags=["alpine:3", "alpine:latest", "localhost:5000/x:1"],
        repo_digests=[f"alpine@{d1}", f"other@{d2}"],
    )
    assert row_tuples([image], digests=False) == [
        ("alpine", "3", "<none>"),
        ("alpine", "latest", "<none>"),
        ("localhost:5000/x", "1", "<none>"),
        ("other", "<none>", ""),
    ]
    assert row_tuples([image], digests=True) == [
        ("alpine", "3", d1),
        ("alpine", "latest", d1),
        ("localhost:5000/x", "1", "<none>"),
        ("other", "<none>", d2),
    ]
    assert row_tuples([summary()], digests=True) == [("<none>", "<none>", "<none>")]


def test_records_have_every_field() -> None:
    assert summary_record(summary(labels={"b": "2", "a": "1"})) == {
        "id": ID,
        "repo_tags": [],
        "repo_digests": [],
        "created": 1,
        "size": 7_050_000,
        "virtual_size": 7_050_000,
        "containers": 0,
        "labels": {"a": "1", "b": "2"},
    }
    info = pb.ImageInfo(
        id=ID,
        config=pb.ImageConfig(cmd=["sh"], exposed_ports={"80/tcp": common_pb2.Empty()}),
        root_fs=pb.RootFS(type="layers", layers=[ID2]),
    )
    record = info_record(info)
    assert record["config"]["exposed_ports"] == {"80/tcp": {}}
    assert record["config"]["cmd"] == ["sh"]
    assert record["root_fs"] == {"type": "layers", "layers": [ID2]}
    assert info_record(pb.ImageInfo(id=ID))["config"] is None


# -- progress displays ---------------------------------------------------------------------------
PULL = [
    pb.PullProgress(id="latest", status="Pulling from library/alpine"),
    pb.PullProgress(id="a1b2c3d4e5f6", status="Pulling fs layer"),
    pb.PullProgress(id="a1b2c3d4e5f6", status="Downloading", progress="[=>  ] 1MB/3MB", current=1, total=3),
    pb.PullProgress(id="a1b2c3d4e5f6", status="Downloading", progress="[==> ] 2MB/3MB", current=2, total=3),
    pb.PullProgress(id="a1b2c3d4e5f6", status="Pull complete"),
    pb.PullProgress(status="Digest: " + ID2),
    pb.PullProgress(status="Status: Downloaded newer image for alpine:latest"),
]


def test_plain_display_prints_status_changes() -> None:
    out = io.StringIO()
    with TransferDisplay("plain", out) as display:
        for message in PULL[:5]:
            display(message)
    assert out.getvalue().splitlines() == [
        "latest: Pulling from library/alpine",
        "a1b2c3d4e5f6: Pulling fs layer",
        "a1b2c3d4e5f6: Downloading",
        "a1b2c3d4e5f6: Pull complete",
    ]


def test_json_and_tty_displays() -> None:
    out = io.StringIO()
    with TransferDisplay("json", out) as display:
        display(PULL[2])
    assert json.loads(out.getvalue()) == {
        "id": "a1b2c3d4e5f6",
        "status": "Downloading",
        "progress": "[=>  ] 1MB/3MB",
        "current": 1,
        "total": 3,
    }
    tty = io.StringIO()
    with TransferDisplay("tty", tty) as display:
        for message in PULL[:5]:
            display(message)
    assert "latest: Pulling from library/alpine" in tty.getvalue()
    assert "a1b2c3d4e5f6: Pull complete" in tty.getvalue()


def test_build_display() -> None:
    out = io.StringIO()
    display = BuildDisplay("plain", out)
    for message in [
        pb.BuildProgress(stream="Step 1/2 : FROM busybox\n"),
        pb.BuildProgress(status="Pulling busybox"),
        pb.BuildProgress(status="Pulling busybox", progress="[=> ]"),
        pb.BuildProgress(stream=" ---> 0123456789ab\n"),
    ]:
        display(message)
    assert out.getvalue() == "Step 1/2 : FROM busybox\nPulling busybox\n ---> 0123456789ab\n"


# -- commands against a fake server ---------------------------------------------------------------
class FakeImages(pb_grpc.ImageServiceServicer):  # type: ignore[misc]
    """Canned answers; remembers what it was sent."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.metadata: list[tuple[str, str]] = []
        self.context = b""
        self.eof_chunks = 0
        self.fail_pull = False

    def Pull(self, request: pb.PullImageRequest, context: grpc.ServicerContext) -> Iterator[pb.PullProgress]:
        self.requests.append(request)
        if request.reference == "127.0.0.1:9/x":
            context.abort(
                grpc.StatusCode.UNAVAILABLE, "no registry answers at http://127.0.0.1:9 (Connection refused)"
            )
        yield from PULL[:5]
        if self.fail_pull:
            context.abort(grpc.StatusCode.NOT_FOUND, "manifest for ghost:latest not found")
        yield from PULL[5:]

    def Push(self, request: pb.PushImageRequest, context: grpc.ServicerContext) -> Iterator[pb.PushProgress]:
        self.requests.append(request)
        yield pb.PushProgress(status="The push refers to repository [localhost:5000/app]")
        yield pb.PushProgress(id="0123456789ab", status="Pushed")
        yield pb.PushProgress(status=f"v1: digest: {ID2} size: 527")

    def List(self, request: pb.ListImagesRequest, context: grpc.ServicerContext) -> pb.ListImagesResponse:
        self.requests.append(request)
        return pb.ListImagesResponse(images=[summary(repo_tags=["alpine:3"]), summary(id=ID2)])

    def Inspect(self, request: pb.InspectImageRequest, context: grpc.ServicerContext) -> pb.ImageInfo:
        if request.id != "alpine":
            context.abort(grpc.StatusCode.NOT_FOUND, f"No such image: {request.id}")
        return pb.ImageInfo(id=ID, repo_tags=["alpine:latest"], os="linux")

    def Remove(self, request: pb.RemoveImageRequest, context: grpc.ServicerContext) -> pb.RemoveImageResponse:
        self.requests.append(request)
        if request.id == "busy":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "conflict: unable to delete abababababab")
        return pb.RemoveImageResponse(untagged=["alpine:latest"], deleted=[ID])

    def Tag(self, request: pb.TagImageRequest, context: grpc.ServicerContext) -> common_pb2.Empty:
        self.requests.append(request)
        return common_pb2.Empty()

    def Exists(self, request: pb.ExistsImageRequest, context: grpc.ServicerContext) -> pb.ExistsImageResponse:
        if request.reference == "alpine":
            return pb.ExistsImageResponse(exists=True, id=ID)
        return pb.ExistsImageResponse(exists=False)

    def Build(
        self, request_iterator: Iterator[pb.BuildContext], context: grpc.ServicerContext
    ) -> Iterator[pb.BuildProgress]:
        self.metadata = [
            (k, v)
            for k, v in context.invocation_metadata()
            if k in ("dockerfile", "tag", "build-arg", "target", "platform", "no-cache")
        ]
        if dict(self.metadata).get("target") == "early":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "target early: refused before reading")
        for message in request_iterator:
            self.context += message.data
            self.eof_chunks += message.eof
        yield pb.BuildProgress(stream="Step 1/1 : FROM scratch\n")
        if dict(self.metadata).get("target") == "broken":
            yield pb.BuildProgress(error="target stage broken could not be found")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "target stage broken could not be found")
        yield pb.BuildProgress(stream="Successfully built abababababab\n", aux=ID)


@pytest.fixture
def fake() -> Iterator[tuple[FakeImages, str]]:
    servicer = FakeImages()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_ImageServiceServicer_to_server(servicer, server)
    with tempfile.TemporaryDirectory(prefix="cairn-") as tmp:  # unix socket paths must be short
        socket = f"{tmp}/s.sock"
        server.add_insecure_port(f"unix:{socket}")
        server.start()
        try:
            yield servicer, socket
        finally:
            server.stop(None)


def run(socket: str, *args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["image", "--server", socket, *args], input=stdin)


def test_pull_prints_final_lines_and_sends_auth(fake: tuple[FakeImages, str]) -> None:
    servicer, socket = fake
    result = run(
        socket,
        "pull",
        "alpine",
        "--platform",
        "linux/arm64",
        "-u",
        "me",
        "--password-stdin",
        "--progress",
        "plain",
        stdin="pw\n",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Digest: " + ID2,
        "Status: Downloaded newer image for alpine:latest",
    ]
    assert "a1b2c3d4e5f6: Pull complete" in result.stderr
    request = servicer.requests[0]
    assert request.platform == "linux/arm64"
    assert decode(request.auth) == {"username": "me", "password": "pw", "serveraddress": "docker.io"}


def test_pull_with_an_auth_file(fake: tuple[FakeImages, str], tmp_path: Path) -> None:
    servicer, socket = fake
    path = auth_file(tmp_path, {"auths": {"localhost:5000": basic("me", "pw")}})
    result = run(socket, "pull", "localhost:5000/app", "--auth-file", str(path), "-q")
    assert result.exit_code == 0, result.output
    assert decode(servicer.requests[-1].auth) == {
        "username": "me",
        "password": "pw",
        "serveraddress": "localhost:5000",
    }
    anonymous = run(socket, "pull", "quay.io/app", "--auth-file", str(path), "-q")
    assert anonymous.exit_code == 0 and servicer.requests[-1].auth == ""
    assert "no credentials for quay.io" in anonymous.stderr
    assert run(socket, "pull", "alpine", "--password", "x").exit_code == 2


def test_pull_json_and_failure(fake: tuple[FakeImages, str]) -> None:
    servicer, socket = fake
    result = run(socket, "pull", "alpine", "-q", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "reference": "alpine",
        "digest": ID2,
        "status": "Downloaded newer image for alpine:latest",
        "up_to_date": False,
        "id": ID,
    }
    assert result.stderr == ""
    servicer.fail_pull = True
    failed = run(socket, "pull", "ghost", "--progress", "none")
    assert isinstance(failed.exception, NotFoundError)
    assert failed.exception.message == "manifest for ghost:latest not found"
    assert failed.stdout == ""


def test_a_registry_that_is_down_is_not_the_server(fake: tuple[FakeImages, str]) -> None:
    _, socket = fake
    result = run(socket, "pull", "127.0.0.1:9/x")
    assert isinstance(result.exception, CairnError)
    assert result.exception.message == "no registry answers at http://127.0.0.1:9 (Connection refused)"


def test_push_prints_the_digest_line(fake: tuple[FakeImages, str]) -> None:
    _, socket = fake
    result = run(socket, "push", "localhost:5000/app:v1", "--progress", "plain")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"v1: digest: {ID2} size: 527\n"
    assert "The push refers to repository [localhost:5000/app]" in result.stderr
    raw = run(socket, "push", "localhost:5000/app:v1", "-q", "-o", "raw")
    assert raw.stdout == ID2 + "\n"


def test_ls_table_filters_and_quiet(fake: tuple[FakeImages, str]) -> None:
    servicer, socket = fake
    result = run(socket, "ls", "-a", "-f", "dangling=false", "-f", "label=a=b", "-f", "label=c")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split()[:3] == ["alpine", "3", "ab" * 6]
    assert lines[1].endswith("7.05MB")
    assert lines[2].split()[:3] == ["<none>", "<none>", "cd" * 6]
    request = servicer.requests[0]
    assert request.all and json.loads(request.filters) == {"dangling": ["false"], "label": ["a=b", "c"]}
    assert run(socket, "ls", "-q").stdout.split() == ["ab" * 6, "cd" * 6]
    listed = json.loads(run(socket, "ls", "-o", "json").stdout)
    assert [image["id"] for image in listed] == [ID, ID2]
    assert run(socket, "ls", "-f", "nonsense").exit_code == 2


def test_inspect_rm_tag_exists(fake: tuple[FakeImages, str]) -> None:
    servicer, socket = fake
    inspected = run(socket, "inspect", "alpine", "ghost")
    assert inspected.exit_code == 1
    assert [info["id"] for info in json.loads(inspected.stdout)] == [ID]
    assert "No such image: ghost" in inspected.stderr

    removed = run(socket, "rm", "alpine", "busy")
    assert removed.exit_code == 1
    assert removed.stdout.splitlines() == ["Untagged: alpine:latest", f"Deleted: {ID}"]
    assert "conflict" in removed.stderr
    assert servicer.requests[0].prune_parents is True
    run(socket, "rm", "alpine", "--no-prune", "-f")
    assert servicer.requests[-1].prune_parents is False and servicer.requests[-1].force is True

    assert run(socket, "tag", "alpine", "localhost:5000/app:v2").exit_code == 0
    tag = servicer.requests[-1]
    assert (tag.source, tag.repo, tag.tag) == ("alpine", "localhost:5000/app", "v2")

    assert run(socket, "exists", "alpine").stdout == ID + "\n"
    missing = run(socket, "exists", "ghost", "-q")
    assert missing.exit_code == 1 and missing.stdout == "" and missing.stderr == ""
    as_json = run(socket, "exists", "ghost", "-o", "json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout) == {"reference": "ghost", "exists": False, "id": None}


def test_build_streams_context_and_parameters(fake: tuple[FakeImages, str], tmp_path: Path) -> None:
    servicer, socket = fake
    root = make_context(tmp_path)
    result = run(
        socket,
        "build",
        str(root),
        "-t",
        "app:1",
        "-t",
        "app:2",
        "--build-arg",
        "A=1",
        "--target",
        "final",
        "--platform",
        "linux/amd64",
        "--no-cache",
        "--progress",
        "plain",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ID + "\n"
    assert "Step 1/1 : FROM scratch" in result.stderr
    assert servicer.metadata == [
        ("dockerfile", "Dockerfile"),
        ("tag", "app:1"),
        ("tag", "app:2"),
        ("build-arg", "A=1"),
        ("target", "final"),
        ("platform", "linux/amd64"),
        ("no-cache", "true"),
    ]
    assert servicer.eof_chunks == 1
    assert "src/pkg/mod.py" in tar_names(servicer.context)

    quiet = run(socket, "build", str(root), "-q", "-o", "json")
    assert json.loads(quiet.stdout) == {"id": ID, "tags": []} and quiet.stderr == ""


def test_build_failure_and_usage_errors(fake: tuple[FakeImages, str], tmp_path: Path) -> None:
    _, socket = fake
    root = make_context(tmp_path)
    failed = run(socket, "build", str(root), "--target", "broken")
    assert isinstance(failed.exception, CairnError)
    assert "could not be found" in failed.exception.message
    assert failed.stdout == ""
    assert run(socket, "build", str(tmp_path / "absent")).exit_code == 2
    assert run(socket, "build", str(root), "-t", "Bad:Tag").exit_code == 2
    assert run(socket, "build", str(root), "-t", "app@sha256:" + "a" * 64).exit_code == 2


def test_unreachable_server(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["image", "--server", str(tmp_path / "none.sock"), "ls"])
    assert isinstance(result.exception, CairnError)
    assert "no server answers" in result.exception.message
    assert not isinstance(result.exception, FailedPreconditionError)


def test_build_ends_when_the_server_refuses_early(fake: tuple[FakeImages, str], tmp_path: Path) -> None:
    _, socket = fake
    root = make_context(tmp_path)
    (root / "big.bin").write_bytes(os.urandom(12 << 20))  # more than the queue and the window hold
    result = run(socket, "build", str(root), "--target", "early", "-q")
    assert isinstance(result.exception, InvalidArgumentError)
    assert result.exception.message == "target early: refused before reading"


def test_build_reports_a_local_context_failure(
    fake: tuple[FakeImages, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servicer, socket = fake

    def failing(spec: BuildContextSpec, out: Any) -> None:
        out.write(b"x" * (3 << 20))
        raise InvalidArgumentError("cannot read secret.txt: Permission denied")

    monkeypatch.setattr(image_context, "write_context", failing)
    result = run(socket, "build", str(make_context(tmp_path)), "-q")
    assert isinstance(result.exception, InvalidArgumentError)
    assert result.exception.message == "cannot read secret.txt: Permission denied"
    assert servicer.eof_chunks == 0
