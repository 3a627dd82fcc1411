"""The verifying Warg client: fetch, verify, publish and download against any Warg registry.

Nothing a registry sends is believed until it verifies (specs/warg.md §8.8):
every record validates on its log and its signature, the checkpoint is signed
by an operator key, every log head is proven under the checkpoint's roots, and
each new checkpoint is proven to extend the one verified before. What verified
is remembered per registry in a state directory, so the next update fetches and
checks only what is new.

:class:`WargClient` is the entry point for Python callers and the ``cairn warg``
commands; the modules behind it each do one job: ``api`` (HTTP), ``verify``
(pure checks), ``update`` (fetch + verify), ``publish``, ``download``,
``state`` (the state directory), ``keys`` (the signing key file), ``urls``.
"""

from __future__ import annotations

from cairn.warg.client.api import WargApi
from cairn.warg.client.client import PublishResult, WargClient
from cairn.warg.client.download import Downloaded
from cairn.warg.client.errors import (
    MalformedResponseError,
    RecordRejectedError,
    VerificationError,
    WargNotFoundError,
)
from cairn.warg.client.keys import create_key, default_key_file, load_key
from cairn.warg.client.state import ClientState, OperatorTrack, PackageTrack, StateStore, default_state_root
from cairn.warg.client.update import Updater, UpdateReport
from cairn.warg.client.urls import DEFAULT_REGISTRY, registry_url

__all__ = [
    "DEFAULT_REGISTRY",
    "ClientState",
    "Downloaded",
    "MalformedResponseError",
    "OperatorTrack",
    "PackageTrack",
    "PublishResult",
    "RecordRejectedError",
    "StateStore",
    "UpdateReport",
    "Updater",
    "VerificationError",
    "WargApi",
    "WargClient",
    "WargNotFoundError",
    "create_key",
    "default_key_file",
    "default_state_root",
    "load_key",
    "registry_url",
]
