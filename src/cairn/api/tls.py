"""TLS for the TCP listeners: one certificate and key, loaded and checked once at start-up.

``--tls-cert`` (a PEM chain, leaf first) and ``--tls-key`` (its PEM private
key) turn TLS on for the HTTP listener (aiohttp, TLS 1.2 or newer) and the
gRPC TCP listener (grpcio's ``ssl_server_credentials``). The unix socket stays
plaintext: it never leaves the machine and its file mode guards it.

Problems surface at start-up as InvalidArgumentError naming the file: missing
or unreadable, not PEM, or a key that does not belong to the certificate.
The key's bytes are never put into a message. This module is not for clients
(``cairn.cli.connection``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from cairn.core.errors import InvalidArgumentError

__all__ = ["ServerTls", "load_server_tls"]


@dataclass(frozen=True, slots=True)
class ServerTls:
    """A checked certificate chain and key, ready for both listeners."""

    cert_path: Path
    key_path: Path
    cert_pem: bytes
    key_pem: bytes

    def ssl_context(self) -> ssl.SSLContext:
        """A server context for aiohttp: TLS 1.2+, the certificate and key, no client certificates."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Server credentials for grpcio's TCP port (grpc-core negotiates TLS 1.2+ by default)."""
        return grpc.ssl_server_credentials([(self.key_pem, self.cert_pem)])


def load_server_tls(cert: Path, key: Path) -> ServerTls:
    """Read and check ``cert`` and ``key``; InvalidArgumentError naming the file when they are unusable."""
    cert_pem = _read(cert, "--tls-cert certificate")
    key_pem = _read(key, "--tls-key private key")
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise InvalidArgumentError(
            f"--tls-cert {cert}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"
        )
    if b"PRIVATE KEY-----" not in key_pem:
        raise InvalidArgumentError(
            f"--tls-key {key}: no PEM private key (-----BEGIN ... PRIVATE KEY-----) in it"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in str(reason).upper():
            raise InvalidArgumentError(
                f"--tls-key {key} does not belong to the certificate in --tls-cert {cert}"
            ) from None
        raise InvalidArgumentError(
            f"--tls-cert {cert} / --tls-key {key}: cannot be used for TLS ({reason})"
        ) from None
    return ServerTls(cert, key, cert_pem, key_pem)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidArgumentError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise InvalidArgumentError(f"{what} {path}: cannot read: {exc.strerror or exc}") from None
