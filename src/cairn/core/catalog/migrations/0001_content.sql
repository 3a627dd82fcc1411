-- Content store: per-namespace names of blobs, and active ingests.
-- Bytes live in the content backend; these rows say who sees them.
-- Every migration spells text columns TEXT COLLATE "binary" (byte order: SQLite's default;
-- the PostgreSQL engine defines the collation) so both engines sort and compare names alike.
CREATE TABLE content_blobs (
    namespace   TEXT COLLATE "binary" NOT NULL,
    digest      TEXT COLLATE "binary" NOT NULL,
    size        BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    labels      TEXT COLLATE "binary" NOT NULL DEFAULT '{}',
    PRIMARY KEY (namespace, digest)
);
CREATE INDEX content_blobs_digest ON content_blobs (digest);

CREATE TABLE content_ingests (
    namespace   TEXT COLLATE "binary" NOT NULL,
    ref         TEXT COLLATE "binary" NOT NULL,
    ingest_key  TEXT COLLATE "binary" NOT NULL UNIQUE,
    total       BIGINT  NOT NULL DEFAULT 0,
    expected    TEXT COLLATE "binary",
    started_at  BIGINT  NOT NULL,
    PRIMARY KEY (namespace, ref)
)
