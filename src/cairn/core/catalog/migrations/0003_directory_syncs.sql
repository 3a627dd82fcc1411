-- Directory sync: one row per sync (CreateSync), its state machine and progress.
-- The background worker of the Directory SyncService reads these at start-up,
-- so syncs survive a restart. Rows are never removed: DeleteSync ends in DELETED.
CREATE TABLE directory_syncs (
    id            TEXT COLLATE "binary" NOT NULL PRIMARY KEY,
    remote_url    TEXT COLLATE "binary" NOT NULL,
    mode          TEXT COLLATE "binary" NOT NULL,             -- continuous | once
    status        TEXT COLLATE "binary" NOT NULL,             -- PENDING, IN_PROGRESS, COMPLETED, FAILED, DELETE_PENDING, DELETED
    reason        TEXT COLLATE "binary" NOT NULL DEFAULT '',  -- why the last pass failed (FAILED)
    registry_url  TEXT COLLATE "binary" NOT NULL DEFAULT '',  -- the remote registry last negotiated
    copied        BIGINT  NOT NULL DEFAULT 0,   -- manifests copied so far, over every pass
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
CREATE INDEX directory_syncs_status ON directory_syncs (status);
CREATE INDEX directory_syncs_created ON directory_syncs (created_at, id)
