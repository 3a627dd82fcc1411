"""Settings precedence: defaults < config file < CAIRN_* environment < flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cairn.core.errors import InvalidArgumentError
from cairn.settings import Address, Settings, parse_address, parse_cpus


def test_defaults() -> None:
    s = Settings.load({}, environ={})
    assert s.data_dir == Path(".cairn")
    assert s.http_addr == Address("127.0.0.1", 8090)
    assert s.grpc_addr == Address("127.0.0.1", 8888)
    assert s.socket_path == Path(".cairn/cairn.sock")
    assert s.content.startswith("file:///") and s.content.endswith("/.cairn/content")
    assert s.catalog.startswith("sqlite:///") and s.catalog.endswith("/.cairn/cairn.db")


def test_precedence(tmp_path: Path) -> None:
    config = tmp_path / "cairn.toml"
    config.write_text('data_dir = "/from/file"\nhttp_addr = "127.0.0.1:1"\ngrpc-addr = "127.0.0.1:2"\n')
    env = {"CAIRN_CONFIG": str(config), "CAIRN_HTTP_ADDR": "127.0.0.1:3", "CAIRN_GRPC_ADDR": "127.0.0.1:4"}
    s = Settings.load({"grpc_addr": "[::1]:5", "data_dir": None}, environ=env)
    assert s.data_dir == Path("/from/file")  # file beats default; unset flag changes nothing
    assert s.http_addr == Address("127.0.0.1", 3)  # environment beats file
    assert s.grpc_addr == Address("::1", 5)  # flag beats environment
    assert str(s.grpc_addr) == "[::1]:5"
    assert s.socket_path == Path("/from/file/cairn.sock")


def test_bad_values_are_clear() -> None:
    with pytest.raises(InvalidArgumentError, match="HOST:PORT"):
        Settings.load({"http_addr": "nonsense"}, environ={})
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        Settings.load({"config": "/no/such/file.toml"}, environ={})
    with pytest.raises(InvalidArgumentError, match="not a boolean"):
        Settings.load({}, environ={"CAIRN_INSECURE_ALLOW_ANONYMOUS": "maybe"})


def test_unknown_config_keys_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("data_dri = 'typo'\n")
    with pytest.raises(InvalidArgumentError, match="data_dri"):
        Settings.load({"config": str(config)}, environ={})


def test_non_loopback_needs_auth_or_explicit_consent() -> None:
    Settings.load({"http_addr": "[::1]:80", "grpc_addr": "localhost:1"}, environ={}).check_binding()
    exposed = Settings.load({"http_addr": "0.0.0.0:8090"}, environ={})
    with pytest.raises(InvalidArgumentError, match="--insecure-allow-anonymous"):
        exposed.check_binding()
    Settings.load({"http_addr": "0.0.0.0:8090", "insecure_allow_anonymous": True}, environ={}).check_binding()


def test_users_protect_http_and_grpc() -> None:
    """gRPC over TCP needs Bearer tokens once users are configured (issue 8), so it may bind widely."""
    Settings.load({"http_addr": "0.0.0.0:8090", "users_file": "/users"}, environ={}).check_binding()
    Settings.load({"grpc_addr": "0.0.0.0:8888", "users_file": "/users"}, environ={}).check_binding()
    grpc_exposed = Settings.load({"grpc_addr": "0.0.0.0:8888"}, environ={})
    with pytest.raises(InvalidArgumentError, match=r"0\.0\.0\.0:8888 without authentication.*--users-file"):
        grpc_exposed.check_binding()


def test_tls_needs_certificate_and_key() -> None:
    with pytest.raises(InvalidArgumentError, match="--tls-cert needs --tls-key"):
        Settings.load({"tls_cert": "/c.pem"}, environ={}).check_binding()
    with pytest.raises(InvalidArgumentError, match="--tls-key needs --tls-cert"):
        Settings.load({}, environ={"CAIRN_TLS_KEY": "/k.pem"}).check_binding()
    both = Settings.load({"tls_cert": "/c.pem", "tls_key": "/k.pem"}, environ={})
    assert both.tls_enabled and both.registry_url == "https://127.0.0.1:8090"
    assert Settings.load({}, environ={}).registry_url == "http://127.0.0.1:8090"


def test_rate_settings() -> None:
    settings = Settings.load({"rate_limit": "2.5"}, environ={"CAIRN_RATE_BURST": "7"})
    assert (settings.rate_limit, settings.rate_burst) == (2.5, 7)
    for bad in ({"rate_limit": "-1"}, {"rate_burst": "x"}, {"rate_limit": "inf"}):
        with pytest.raises(InvalidArgumentError, match="rate_"):
            Settings.load(bad, environ={})


def test_manifest_limit_is_at_least_4_mib() -> None:
    with pytest.raises(InvalidArgumentError, match="at least 4194304"):
        Settings.load({"manifest_max_bytes": "1000"}, environ={})
    assert Settings.load({"manifest_max_bytes": str(8 << 20)}, environ={}).manifest_max_bytes == 8 << 20


@pytest.mark.parametrize("text", ["1.2.3.4", ":80", "host:99999", "host:x"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_address(text, "--http-addr")


def test_grpc_cpus() -> None:
    available = os.sched_getaffinity(0)
    assert Settings.load({}, environ={}).grpc_cpus == "auto"
    assert parse_cpus("auto") == frozenset({min(available)})
    assert parse_cpus("all") is None
    assert parse_cpus(str(min(available))) == frozenset({min(available)})
    with pytest.raises(InvalidArgumentError, match="not auto, all, or a CPU list"):
        Settings.load({}, environ={"CAIRN_GRPC_CPUS": "zero"})
    with pytest.raises(InvalidArgumentError, match="not all available"):
        Settings.load({"grpc_cpus": "4096"}, environ={})
