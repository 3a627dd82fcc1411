-- Warg registry (specs/warg.md): logs and their validated state, records as received,
-- the Merkle log's complete nodes, the sparse map's nodes (shared between versions) and
-- every checkpoint ever issued. Rows here are only added or moved forward, never rewritten
-- into an older state, so every checkpoint stays provable.

-- One row per log (the operator log and each package log a record was submitted to).
CREATE TABLE warg_logs (
    log_id      TEXT COLLATE "binary" NOT NULL PRIMARY KEY,  -- "sha256:<hex>"
    kind        TEXT COLLATE "binary" NOT NULL,              -- operator | package
    name        TEXT COLLATE "binary",                          -- package name; NULL for the operator log
    state       TEXT COLLATE "binary" NOT NULL DEFAULT '',   -- validated state without releases (JSON); '' before the first
    length      BIGINT  NOT NULL DEFAULT 0,    -- records accepted into this log
    created_at  BIGINT  NOT NULL
);

-- Releases of a package log's validated state, one row each (a log's state JSON stays small).
CREATE TABLE warg_releases (
    log_id   TEXT COLLATE "binary" NOT NULL,
    version  TEXT COLLATE "binary" NOT NULL,
    body     TEXT COLLATE "binary" NOT NULL,                    -- the release as JSON (validation's to_json form)
    PRIMARY KEY (log_id, version)
);

-- Every record submitted, with its envelope exactly as received.
CREATE TABLE warg_records (
    log_id          TEXT COLLATE "binary" NOT NULL,
    record_id       TEXT COLLATE "binary" NOT NULL,
    content_bytes   BLOB    NOT NULL,
    key_id          TEXT COLLATE "binary" NOT NULL,
    signature       TEXT COLLATE "binary" NOT NULL,
    status          TEXT COLLATE "binary" NOT NULL,             -- sourcing | queued | accepted | rejected
    reason          TEXT COLLATE "binary" NOT NULL DEFAULT '',  -- why it was rejected
    missing         TEXT COLLATE "binary" NOT NULL DEFAULT '',  -- content digests still to upload (space separated)
    registry_index  BIGINT  UNIQUE,               -- position in the registry log once accepted
    queued_seq      BIGINT,                       -- processing order once queued
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (log_id, record_id)
);
CREATE INDEX warg_records_by_log ON warg_records (log_id, registry_index);
CREATE INDEX warg_records_queue ON warg_records (status, queued_seq);

-- Hashes of complete in-order nodes of the registry log (leaf i is node 2i).
CREATE TABLE warg_log_nodes (
    node  BIGINT NOT NULL PRIMARY KEY,
    hash  BLOB   NOT NULL
);

-- Nodes of the sparse Merkle map, addressed by their hash; old roots share them.
CREATE TABLE warg_map_nodes (
    hash  BLOB NOT NULL PRIMARY KEY,
    node  BLOB NOT NULL
);

-- Every checkpoint issued, signed by the operator key.
CREATE TABLE warg_checkpoints (
    log_length  BIGINT NOT NULL PRIMARY KEY,
    log_root    TEXT COLLATE "binary" NOT NULL,
    map_root    TEXT COLLATE "binary" NOT NULL,
    timestamp   BIGINT NOT NULL,
    key_id      TEXT COLLATE "binary" NOT NULL,
    signature   TEXT COLLATE "binary" NOT NULL
);

-- Content uploaded for release records (the bytes live in the content store). Only these
-- digests are served by the Warg content routes, so /v1 never exposes other faces' blobs.
CREATE TABLE warg_contents (
    digest      TEXT COLLATE "binary" NOT NULL PRIMARY KEY,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
