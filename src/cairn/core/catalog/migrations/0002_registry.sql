-- OCI registry: repositories, their blob links, manifests, tags.
-- Blob and manifest bytes live in the content store (one containerd namespace);
-- these rows say which repository names which digest. Upload sessions are
-- content ingests in that namespace (refs "registry-upload/<repository>/<id>").
CREATE TABLE registry_repositories (
    name        TEXT    NOT NULL PRIMARY KEY,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE registry_blobs (
    repository  TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    size        BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX registry_blobs_digest ON registry_blobs (digest);

CREATE TABLE registry_manifests (
    repository     TEXT    NOT NULL,
    digest         TEXT    NOT NULL,
    media_type     TEXT    NOT NULL,
    size           BIGINT  NOT NULL,
    artifact_type  TEXT,
    subject        TEXT,
    annotations    TEXT    NOT NULL DEFAULT '{}',
    created_at     BIGINT  NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX registry_manifests_subject ON registry_manifests (repository, subject);

-- What each manifest references (config, layers, child manifests): the roots
-- garbage collection will follow.
CREATE TABLE registry_manifest_refs (
    repository  TEXT    NOT NULL,
    manifest    TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    PRIMARY KEY (repository, manifest, digest)
);
CREATE INDEX registry_manifest_refs_digest ON registry_manifest_refs (digest);

CREATE TABLE registry_tags (
    repository  TEXT    NOT NULL,
    tag         TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (repository, tag)
);
CREATE INDEX registry_tags_digest ON registry_tags (repository, digest);
