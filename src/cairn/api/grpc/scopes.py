"""Which access scope each gRPC method needs: the table behind gRPC token auth.

Scopes are the registry's (``repository:<name>:<actions>``), so one access file
and one ``/token`` endpoint serve both faces. gRPC resources that are not
registry repositories get names with a ``:`` in them, which no registry
repository can have, so a rule for a real repository never grants them by
accident (only ``*`` globs or explicit names do):

=====================================  =========================================================
call                                   scope
=====================================  =========================================================
content API / leases, namespace N      ``repository:containerd:N:pull`` (Info, List, Read,
                                       Status, ListStatuses; leases List, ListResources),
                                       ``push`` (Write, Update, Abort; leases Create, Delete,
                                       AddResource, DeleteResource), ``delete`` (Delete)
... in the registry or images          ``repository:cairn:admin:*``, for every method: those
namespace                              namespaces hold every repository's blobs by digest, so
                                       per-repository rights cannot be checked there
Directory StoreService                 ``repository:<directory_repository>:pull`` (Pull,
                                       PullWithOptions, Lookup), ``push`` (Push,
                                       PushWithOptions), ``delete`` (Delete): the same rights
                                       as the records repository on ``/v2/``
Directory SyncService                  ``repository:cairn:admin:*`` (CreateSync, ListSyncs,
                                       GetSync, DeleteSync); RequestRegistryCredentials needs
                                       no token (a peer's handshake, gated by
                                       ``sync_allowed_nodes``)
image service                          ``repository:cairn:images:pull`` (List, Inspect,
                                       Exists, Push), ``push`` (Pull, Tag, Build), ``delete``
                                       (Remove)
anything else                          ``repository:cairn:admin:*`` (fail closed)
=====================================  =========================================================

Lease changes count as content pushes (a lease keeps content alive, like a
write); label updates too, although removing a ``containerd.io/gc.root`` label
can let GC collect a blob: ``push`` in a containerd namespace includes that.
The image service's ``Push`` only reads the store (it sends an image to another
registry), hence ``pull``. This module is not for checking tokens
(:mod:`cairn.api.grpc.auth`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cairn.core.auth import Scope

__all__ = ["ADMIN", "IMAGES", "OPEN", "ScopeMap", "method_table"]

#: The administrator's scope: sync management, the registry and images namespaces over gRPC.
ADMIN = Scope("repository", "cairn:admin", frozenset({"*"}))
#: The pseudo-repository whose rights the image service checks.
IMAGES = "cairn:images"
#: A method that needs no token (it has a gate of its own).
OPEN = "open"

_CONTENT_V1 = "containerd.services.content.v1.Content"
_CONTENT_SEED = "containerd.v1.Content"
_LEASES = "containerd.services.leases.v1.Leases"
_STORE = "store.v1.StoreService"
_SYNC = "store.v1.SyncService"
_IMAGES = "arcbox.v1.ImageService"

#: service -> (what the resource is, method -> action). Kinds: content, directory, images, admin.
_SERVICES: dict[str, tuple[str, dict[str, str]]] = {
    _CONTENT_V1: (
        "content",
        {
            "Info": "pull",
            "List": "pull",
            "Read": "pull",
            "Status": "pull",
            "ListStatuses": "pull",
            "Write": "push",
            "Update": "push",
            "Abort": "push",
            "Delete": "delete",
        },
    ),
    _CONTENT_SEED: ("content", {"Info": "pull", "Read": "pull", "Status": "pull", "Write": "push"}),
    _LEASES: (
        "content",
        {
            "List": "pull",
            "ListResources": "pull",
            "Create": "push",
            "Delete": "push",
            "AddResource": "push",
            "DeleteResource": "push",
        },
    ),
    _STORE: (
        "directory",
        {
            "Pull": "pull",
            "PullWithOptions": "pull",
            "Lookup": "pull",
            "Push": "push",
            "PushWithOptions": "push",
            "Delete": "delete",
        },
    ),
    _SYNC: (
        "admin",
        {
            "CreateSync": "*",
            "ListSyncs": "*",
            "GetSync": "*",
            "DeleteSync": "*",
            "RequestRegistryCredentials": OPEN,
        },
    ),
    _IMAGES: (
        "images",
        {
            "List": "pull",
            "Inspect": "pull",
            "Exists": "pull",
            "Push": "pull",
            "Pull": "push",
            "Tag": "push",
            "Build": "push",
            "Remove": "delete",
        },
    ),
}


def method_table() -> Mapping[str, tuple[str, Mapping[str, str]]]:
    """The table above (service -> (resource kind, method -> action)), for docs and tests."""
    return _SERVICES


@dataclass(frozen=True, slots=True)
class ScopeMap:
    """The scope a call needs, given this server's namespaces and records repository."""

    registry_namespace: str = "registry"
    images_namespace: str = "images"
    directory_repository: str = "dir"

    def needs_namespace(self, method: str) -> bool:
        """Whether the scope of ``method`` (``/package.Service/Method``) depends on a containerd namespace."""
        service, _ = _split(method)
        return service in _SERVICES and _SERVICES[service][0] == "content"

    def required(self, method: str, namespace: str | None = None) -> Scope | None:
        """The scope ``method`` needs (None: no token needed); ``namespace`` for content and lease calls."""
        service, name = _split(method)
        kind, actions = _SERVICES.get(service, ("admin", {}))
        action = actions.get(name)
        if action is None:
            return ADMIN
        if action == OPEN:
            return None
        if kind == "content":
            if namespace is None or namespace in (self.registry_namespace, self.images_namespace):
                return ADMIN
            return Scope("repository", f"containerd:{namespace}", frozenset({action}))
        if kind == "directory":
            return Scope("repository", self.directory_repository, frozenset({action}))
        if kind == "images":
            return Scope("repository", IMAGES, frozenset({action}))
        return ADMIN


def _split(method: str) -> tuple[str, str]:
    """``/package.Service/Method`` -> (``package.Service``, ``Method``)."""
    service, _, name = method.lstrip("/").partition("/")
    return service, name
