-- Content store: per-namespace names of blobs, and active ingests.
-- Bytes live in the content backend; these rows say who sees them.
CREATE TABLE content_blobs (
    namespace   TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    size        BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    labels      TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (namespace, digest)
);
CREATE INDEX content_blobs_digest ON content_blobs (digest);

CREATE TABLE content_ingests (
    namespace   TEXT    NOT NULL,
    ref         TEXT    NOT NULL,
    ingest_key  TEXT    NOT NULL UNIQUE,
    total       BIGINT  NOT NULL DEFAULT 0,
    expected    TEXT,
    started_at  BIGINT  NOT NULL,
    PRIMARY KEY (namespace, ref)
)
