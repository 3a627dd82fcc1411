"""``cairn serve`` as a process: listeners, health, metrics, refusals, configuration sources."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import CairnServer, cairn_command, free_port, require_binary


def get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def test_healthz_and_metrics(cairn_server: CairnServer) -> None:
    status, content_type, body = get(f"{cairn_server.http_url}/healthz")
    assert status == 200 and content_type.startswith("application/json")
    assert json.loads(body)["status"] == "ok"

    data = os.urandom(5000)
    subprocess.run([require_binary("ctr"), "-a", str(cairn_server.socket), "content", "ingest", "m"],
                   input=data, check=True, capture_output=True)
    # The stream's final accounting happens as the server finishes it (or grpcio drops it), after ctr exits.
    deadline = time.monotonic() + 15  # generous: a loaded 2-core CI machine may take seconds
    while True:
        status, content_type, body = get(f"{cairn_server.http_url}/metrics")
        if 'method="Write"' in body or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200 and content_type.startswith("text/plain")
    assert "cairn_content_commits_total 1.0" in body
    assert "cairn_content_written_bytes_total 5000.0" in body
    grpc_lines = [line for line in body.splitlines() if line.startswith("cairn_grpc_requests_total")]
    # OK, or CANCELLED when ctr hung up right after its commit answer, before the handler resumed.
    assert any(
        line.startswith(('cairn_grpc_requests_total{code="OK",method="Write",',
                         'cairn_grpc_requests_total{code="CANCELLED",method="Write",'))
        for line in grpc_lines
    ), grpc_lines
    assert 'cairn_http_requests_total{route="/healthz",status="200"}' in body


def run_serve(*args: str, env: dict[str, str] | None = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    return subprocess.run([*cairn_command(), "serve", *args], capture_output=True, text=True,
                          timeout=timeout, env={**base, **(env or {})}, check=False)


def test_non_loopback_bind_is_refused(short_tmp: Path) -> None:
    result = run_serve("--data-dir", str(short_tmp / "d"), "--http-addr", f"0.0.0.0:{free_port()}",
                       "--grpc-addr", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "--insecure-allow-anonymous" in result.stderr


@pytest.mark.embedded_only("a start-up check of the data directory; the stores do not matter")
def test_one_server_per_data_directory(cairn_server: CairnServer) -> None:
    result = run_serve("--data-dir", str(cairn_server.data_dir), "--http-addr", f"127.0.0.1:{free_port()}",
                       "--grpc-addr", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "in use by another cairn serve" in result.stderr


@pytest.mark.embedded_only("a start-up check of the data directory; the stores do not matter")
def test_busy_port_is_a_clear_error(cairn_server: CairnServer, short_tmp: Path) -> None:
    result = run_serve("--data-dir", str(short_tmp / "other"), "--http-addr", f"127.0.0.1:{free_port()}",
                       "--grpc-addr", cairn_server.grpc_addr)
    assert result.returncode == 1
    assert f"cannot listen for gRPC on {cairn_server.grpc_addr}" in result.stderr


def test_bad_setting_is_a_clear_error(short_tmp: Path) -> None:
    result = run_serve(env={"CAIRN_DATA_DIR": str(short_tmp / "d"), "CAIRN_HTTP_ADDR": "nowhere"})
    assert result.returncode == 1
    assert "'nowhere' is not HOST:PORT" in result.stderr


def test_config_file_environment_and_flags(short_tmp: Path) -> None:
    """A config file sets the data dir, the environment the HTTP port, a flag the gRPC port."""
    http_port, grpc_port = free_port(), free_port()
    config = short_tmp / "cairn.toml"
    config.write_text(f'data_dir = "{short_tmp / "fromfile"}"\nhttp_addr = "127.0.0.1:1"\n')
    base = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env = {**base, "CAIRN_CONFIG": str(config), "CAIRN_HTTP_ADDR": f"127.0.0.1:{http_port}"}
    proc = subprocess.Popen([*cairn_command(), "serve", "--grpc-addr", f"127.0.0.1:{grpc_port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        server = CairnServer(short_tmp / "fromfile", grpc_port=grpc_port, http_port=http_port)
        for _ in range(200):
            if server.socket.exists() and server._healthy():
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            subprocess.run(["sleep", "0.05"], check=True)
        assert server._healthy()
        assert (short_tmp / "fromfile" / "cairn.db").exists()
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
        if proc.stderr:
            proc.stderr.close()


def test_sigterm_exits_cleanly(cairn_server: CairnServer) -> None:
    assert cairn_server.stop() == 0
    assert "shutting down" in cairn_server.log()
