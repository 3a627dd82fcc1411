"""Which nodes may read this node's records for sync, and the registry access they are given.

The answer to a remote node's ``RequestRegistryCredentials`` (DECISIONS.md
directory 12):

- an empty node id: refused, ``requesting node ID is required`` (as upstream);
- the registry lets anonymous callers pull the records repository (no users
  configured, the loopback default; or an access rule for ``anonymous``):
  the registry URL and no credentials, so two default nodes sync with no setup;
- a node id on the allow-list (``sync_allowed_nodes``, comma-separated, ``*``
  for any): the registry URL and Basic credentials ``cairn-sync-token`` /
  a password token that grants ``repository:<dir>:pull`` only and expires
  after :data:`TOKEN_TTL_SECONDS`;
- anyone else: refused, with the reason.

This module is not for checking the credentials when they are used (the
registry face and :mod:`cairn.core.auth` do that).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cairn.core.auth import TOKEN_USERNAME, Auth, Scope

__all__ = ["TOKEN_TTL_SECONDS", "CredentialGrant", "SyncCredentials", "parse_allowed_nodes"]

log = logging.getLogger(__name__)

#: Lifetime of a sync token: long enough for one pass (the seed's worker timeout), short otherwise.
TOKEN_TTL_SECONDS = 600


@dataclass(frozen=True, slots=True)
class CredentialGrant:
    """The answer: success with a registry URL (and maybe Basic credentials), or a reason."""

    success: bool
    error: str = ""
    registry_url: str = ""
    username: str = ""
    password: str = ""


def parse_allowed_nodes(text: str) -> frozenset[str]:
    """Node ids from the comma-separated setting, blanks dropped (``*``: any node)."""
    return frozenset(part.strip() for part in text.split(",") if part.strip())


class SyncCredentials:
    """Decides and issues registry access for other nodes (see the module docstring)."""

    def __init__(
        self,
        auth: Auth | None,
        registry_url: str,
        repository: str,
        allowed_nodes: str,
        *,
        ttl_seconds: int = TOKEN_TTL_SECONDS,
    ) -> None:
        self._auth = auth
        # A repository other than the default goes in the URL's path (cairn/directory/sync.py reads it).
        base = registry_url.rstrip("/")
        self.registry_url = base if repository == "dir" else f"{base}/{repository}"
        self.repository = repository
        self.allowed = parse_allowed_nodes(allowed_nodes)
        self._ttl = ttl_seconds

    def _pull(self) -> Scope:
        return Scope("repository", self.repository, frozenset({"pull"}))

    @property
    def anonymous_pull(self) -> bool:
        """Whether anyone may pull the records repository without credentials."""
        return self._auth is None or self._auth.policy.granted(None, self._pull()) == {"pull"}

    def request(self, node_id: str) -> CredentialGrant:
        """The access granted to ``node_id``; never raises for a refused node."""
        node_id = node_id.strip()
        if not node_id:
            return CredentialGrant(False, "requesting node ID is required")
        if self.anonymous_pull:
            log.info("sync: node %s given the registry URL %s (anonymous pull)", node_id, self.registry_url)
            return CredentialGrant(True, registry_url=self.registry_url)
        if "*" not in self.allowed and node_id not in self.allowed:
            log.warning("sync: node %s asked for registry credentials and is not allowed", node_id)
            return CredentialGrant(
                False,
                f"node {node_id!r} is not allowed to sync from this node (it is not in sync_allowed_nodes)",
            )
        assert self._auth is not None
        issued = self._auth.issue_password_token(f"node:{node_id}", [self._pull()], self._ttl)
        log.info(
            "sync: node %s given a %ds read-only token for repository %s", node_id, issued.expires_in, self.repository
        )
        return CredentialGrant(True, registry_url=self.registry_url, username=TOKEN_USERNAME, password=issued.token)
