-- OCI registry: repositories, their blob links, manifests, tags.
-- Blob and manifest bytes live in the content store (one containerd namespace);
-- these rows say which repository names which digest. Upload sessions are
-- content ingests in that namespace (refs "registry-upload/<repository>/<id>").
CREATE TABLE registry_repositories (
    name        TEXT COLLATE "binary" NOT NULL PRIMARY KEY,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE registry_blobs (
    repository  TEXT COLLATE "binary" NOT NULL,
    digest      TEXT COLLATE "binary" NOT NULL,
    size        BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX registry_blobs_digest ON registry_blobs (digest);

CREATE TABLE registry_manifests (
    repository     TEXT COLLATE "binary" NOT NULL,
    digest         TEXT COLLATE "binary" NOT NULL,
    media_type     TEXT COLLATE "binary" NOT NULL,
    size           BIGINT  NOT NULL,
    artifact_type  TEXT COLLATE "binary",
    subject        TEXT COLLATE "binary",
    annotations    TEXT COLLATE "binary" NOT NULL DEFAULT '{}',
    created_at     BIGINT  NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX registry_manifests_subject ON registry_manifests (repository, subject);

-- What each manifest references (config, layers, child manifests): the roots
-- garbage collection will follow.
CREATE TABLE registry_manifest_refs (
    repository  TEXT COLLATE "binary" NOT NULL,
    manifest    TEXT COLLATE "binary" NOT NULL,
    digest      TEXT COLLATE "binary" NOT NULL,
    PRIMARY KEY (repository, manifest, digest)
);
CREATE INDEX registry_manifest_refs_digest ON registry_manifest_refs (digest);

CREATE TABLE registry_tags (
    repository  TEXT COLLATE "binary" NOT NULL,
    tag         TEXT COLLATE "binary" NOT NULL,
    digest      TEXT COLLATE "binary" NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (repository, tag)
);
CREATE INDEX registry_tags_digest ON registry_tags (repository, digest);
