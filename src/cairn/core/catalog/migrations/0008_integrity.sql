-- Integrity checks (cairn fsck): how far the blob check of a run got, so an interrupted
-- fsck resumes where it stopped instead of re-hashing everything.

-- One row per check scope ('blobs': every blob the content backend holds). Blobs are
-- checked in digest order (the backends list them so); every blob up to and including
-- last_digest is done. finished_at is set when the run checked the last blob.
CREATE TABLE integrity_runs (
    scope          TEXT COLLATE "binary" NOT NULL PRIMARY KEY,
    started_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    last_digest    TEXT COLLATE "binary" NOT NULL DEFAULT '',
    blobs_checked  BIGINT NOT NULL DEFAULT 0,
    bytes_checked  BIGINT NOT NULL DEFAULT 0,
    finished_at    BIGINT
);

-- Blobs a run found corrupt before it was interrupted: the resumed run checks them again,
-- so its report still names them (they lie behind last_digest).
CREATE TABLE integrity_suspects (
    scope   TEXT COLLATE "binary" NOT NULL,
    digest  TEXT COLLATE "binary" NOT NULL,
    PRIMARY KEY (scope, digest)
);
