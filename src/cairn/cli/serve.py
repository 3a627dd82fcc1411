"""``cairn serve``: flags, each with a ``CAIRN_*`` environment twin resolved by Settings."""

from __future__ import annotations

from pathlib import Path

import click

from cairn.settings import Settings

__all__ = ["serve_command"]


@click.command("serve")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory [CAIRN_DATA_DIR; ./.cairn]")
@click.option("--http-addr", metavar="HOST:PORT", help="HTTP listener [CAIRN_HTTP_ADDR; 127.0.0.1:8090]")
@click.option("--grpc-addr", metavar="HOST:PORT", help="gRPC listener [CAIRN_GRPC_ADDR; 127.0.0.1:8888]")
@click.option("--socket", type=click.Path(path_type=Path), help="gRPC unix socket [CAIRN_SOCKET; <data-dir>/cairn.sock]")
@click.option("--config", type=click.Path(path_type=Path), help="TOML config file [CAIRN_CONFIG]")
@click.option(
    "--content",
    "--content-url",
    "content_url",
    metavar="URL",
    help="Content backend: file:///path or s3://bucket/prefix?endpoint=... [CAIRN_CONTENT_URL; file://<data-dir>/content]",
)
@click.option(
    "--catalog",
    "--catalog-url",
    "catalog_url",
    metavar="URL",
    help="Catalog: sqlite:///path or postgresql://user@host/db [CAIRN_CATALOG_URL; sqlite://<data-dir>/cairn.db]",
)
@click.option("--grpc-workers", type=int, help="gRPC worker threads [CAIRN_GRPC_WORKERS; 32]")
@click.option("--grpc-cpus", metavar="CPUS", help="CPUs for gRPC's threads: auto (one), all, or e.g. 0-1 [CAIRN_GRPC_CPUS; auto]")
@click.option("--registry-namespace", help="containerd namespace of registry content [CAIRN_REGISTRY_NAMESPACE; registry]")
@click.option("--manifest-max-bytes", type=int, help="Largest manifest accepted [CAIRN_MANIFEST_MAX_BYTES; 4194304]")
@click.option("--upload-expiry-seconds", type=int, help="Idle upload sessions expire [CAIRN_UPLOAD_EXPIRY_SECONDS; 86400]")
@click.option("--gc-interval-seconds", type=int, help="Seconds between garbage collections, 0 for none [CAIRN_GC_INTERVAL_SECONDS; 3600]")
@click.option("--gc-grace-seconds", type=int, help="GC keeps anything newer than this [CAIRN_GC_GRACE_SECONDS; 3600]")
@click.option(
    "--ingest-expiry-seconds", type=int, help="GC aborts content ingests idle this long [CAIRN_INGEST_EXPIRY_SECONDS; 86400]"
)
@click.option(
    "--users-file",
    type=click.Path(path_type=Path),
    help="htpasswd file (bcrypt); turns registry authentication on [CAIRN_USERS_FILE]",
)
@click.option("--access-file", type=click.Path(path_type=Path), help="TOML per-repository access rules [CAIRN_ACCESS_FILE]")
@click.option("--token-ttl-seconds", type=int, help="Lifetime of /token tokens [CAIRN_TOKEN_TTL_SECONDS; 300]")
@click.option(
    "--token-key-file",
    type=click.Path(path_type=Path),
    help="Key signing /token tokens; replicas share one [CAIRN_TOKEN_KEY_FILE; <data-dir>/token.key]",
)
@click.option("--directory-repository", help="Registry repository of Directory records [CAIRN_DIRECTORY_REPOSITORY; dir]")
@click.option("--node-id", help="This node's id for Directory sync [CAIRN_NODE_ID; cairn://<host>/<grpc-addr>]")
@click.option(
    "--sync-allowed-nodes",
    metavar="IDS",
    help="Node ids (comma-separated, * for any) that get registry credentials for sync [CAIRN_SYNC_ALLOWED_NODES]",
)
@click.option("--sync-poll-seconds", type=float, help="Poll interval of continuous syncs [CAIRN_SYNC_POLL_SECONDS; 30]")
@click.option("--advertise-url", help="This node's registry URL as other nodes reach it [CAIRN_ADVERTISE_URL; http://<http-addr>]")
@click.option("--warg-namespaces", metavar="NS,...", help="Namespaces the Warg operator log defines [CAIRN_WARG_NAMESPACES; cairn]")
@click.option(
    "--warg-import-namespaces",
    metavar="NS=REGISTRY,...",
    help="Warg namespaces imported from other registries [CAIRN_WARG_IMPORT_NAMESPACES]",
)
@click.option(
    "--warg-operator-key-file",
    type=click.Path(path_type=Path),
    help="Warg operator key, which must exist [CAIRN_WARG_OPERATOR_KEY_FILE; <data-dir>/warg-operator.key, created if missing]",
)
@click.option(
    "--warg-checkpoint-interval",
    type=float,
    help="Longest a Warg batch waits for its checkpoint, seconds [CAIRN_WARG_CHECKPOINT_INTERVAL; 0.1]",
)
@click.option("--warg-upload-max-bytes", type=int, help="Largest Warg content upload [CAIRN_WARG_UPLOAD_MAX_BYTES; 1 GiB]")
@click.option(
    "--warg-authorized-keys",
    metavar="NS=KEYID,...",
    help="Only these keys may publish in these Warg namespaces [CAIRN_WARG_AUTHORIZED_KEYS]",
)
@click.option(
    "--warg-wasm-only", is_flag=True, default=None, help="Refuse Warg content that is not WebAssembly [CAIRN_WARG_WASM_ONLY]"
)
@click.option(
    "--images-namespace", metavar="NS", help="Content namespace of the image service's blobs [CAIRN_IMAGES_NAMESPACE; images]"
)
@click.option(
    "--image-insecure-registries",
    metavar="HOST[:PORT],...",
    help="Registries image pull/push reach over plain HTTP (loopback always) [CAIRN_IMAGE_INSECURE_REGISTRIES]",
)
@click.option(
    "--image-auth-file",
    type=click.Path(dir_okay=False),
    help="docker config.json / auth.json with registry credentials [CAIRN_IMAGE_AUTH_FILE]",
)
@click.option(
    "--image-parallel-transfers", type=int, help="Layers one pull or push transfers at once [CAIRN_IMAGE_PARALLEL_TRANSFERS; 6]"
)
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path),
    help="PEM certificate chain: HTTP and gRPC TCP listeners speak TLS [CAIRN_TLS_CERT]",
)
@click.option("--tls-key", type=click.Path(path_type=Path), help="PEM private key of --tls-cert [CAIRN_TLS_KEY]")
@click.option(
    "--rate-limit", type=float, metavar="PER_SECOND", help="Requests per second per client, 0 = off [CAIRN_RATE_LIMIT; 0]"
)
@click.option("--rate-burst", type=int, help="Requests a client may make at once [CAIRN_RATE_BURST; 2 x rate]")
@click.option(
    "--verify-reads-max-bytes",
    type=int,
    help="Hash whole-blob reads of blobs up to this size as they are served; 0 = never "
    "[CAIRN_VERIFY_READS_MAX_BYTES; 16777216]",
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="[CAIRN_LOG_LEVEL; info]")
@click.option(
    "--insecure-allow-anonymous",
    is_flag=True,
    default=None,
    help="Allow non-loopback listeners without authentication [CAIRN_INSECURE_ALLOW_ANONYMOUS]",
)
def serve_command(**flags: object) -> None:
    """Run the store with all its faces until SIGINT/SIGTERM."""
    from cairn.cli.main import setup_logging
    from cairn.server import serve  # imported here: client commands should not pay for the server

    settings = Settings.load(flags)
    setup_logging(settings.log_level)
    serve(settings)
