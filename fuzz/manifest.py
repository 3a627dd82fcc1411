"""atheris harness: OCI manifests and indexes (``parse_manifest``) from arbitrary bytes.

Contract checked: only InvalidArgumentError; an accepted manifest keeps its bytes
and digest and its canonical re-encoding parses to the same model.
"""

from __future__ import annotations

import json
import sys

from _harness import main

# Instrumented for coverage by _harness.main() once loaded.
from cairn.core.digest import Digest
from cairn.core.errors import InvalidArgumentError
from cairn.oci.model import parse_manifest

_DIGEST = "sha256:" + "ab" * 32
SEEDS = [
    json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _DIGEST, "size": 2},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _DIGEST, "size": 3,
                            "annotations": {"a": "b"}}],
                "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _DIGEST,
                            "size": 9},
                "artifactType": "application/x", "annotations": {"k": "v"}}).encode(),
    json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _DIGEST,
                               "size": 7, "platform": {"architecture": "amd64", "os": "linux",
                                                       "os.features": ["x"], "variant": "v8"}}]}).encode(),
    json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": _DIGEST,
                           "size": 1}, "layers": []}).encode(),
]
_CONTENT_TYPES = [None, "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json"]


def test_one_input(data: bytes) -> None:
    content_type = _CONTENT_TYPES[data[0] % len(_CONTENT_TYPES)] if data else None
    try:
        parsed = parse_manifest(data, content_type)
    except InvalidArgumentError:
        return
    assert parsed.to_bytes() == data and parsed.digest == Digest.of(data)
    again = parse_manifest(parsed.encode())
    assert again.to_dict() == parsed.to_dict()


if __name__ == "__main__":
    main(test_one_input, SEEDS)
    sys.exit(0)
