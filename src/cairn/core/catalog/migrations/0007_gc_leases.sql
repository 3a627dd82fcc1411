-- Garbage collection (cairn.core.gc) and containerd leases (containerd.services.leases.v1).

-- A lease holds resources of its namespace (blobs, ingests) against garbage collection
-- until it is deleted or its containerd.io/gc.expire label (RFC 3339) has passed.
CREATE TABLE leases (
    namespace   TEXT COLLATE "binary" NOT NULL,
    id          TEXT COLLATE "binary" NOT NULL,
    created_at  BIGINT NOT NULL,
    labels      TEXT COLLATE "binary" NOT NULL DEFAULT '{}',
    PRIMARY KEY (namespace, id)
);

-- What each lease holds: (type, resource) as containerd names them, e.g. ("content",
-- "sha256:...") or ("ingests", "<ref>").
CREATE TABLE lease_resources (
    namespace   TEXT COLLATE "binary" NOT NULL,
    lease       TEXT COLLATE "binary" NOT NULL,
    type        TEXT COLLATE "binary" NOT NULL,
    resource    TEXT COLLATE "binary" NOT NULL,
    PRIMARY KEY (namespace, lease, type, resource)
);
CREATE INDEX lease_resources_resource ON lease_resources (namespace, type, resource);

-- Digests whose bytes garbage collection removed (or was about to remove) at swept_at.
-- A commit that names one of them checks, inside its transaction, that the bytes are
-- still there and stores them again if not; rows are pruned an hour after the sweep.
CREATE TABLE content_sweeps (
    digest      TEXT COLLATE "binary" NOT NULL PRIMARY KEY,
    swept_at    BIGINT NOT NULL
)
