-- Ingest data kept outside the local disk (the S3 content store): the multipart upload an
-- ingest writes to, each uploaded part with the hash state after it, and the short "tail"
-- objects a writer leaves when it closes between parts. Any replica continues an ingest
-- from these rows; the content_ingests row stays the one that says the ingest exists.
CREATE TABLE ingest_uploads (
    ingest_key  TEXT COLLATE "binary" PRIMARY KEY,
    algorithm   TEXT COLLATE "binary" NOT NULL,
    upload_id   TEXT COLLATE "binary",
    target      TEXT COLLATE "binary",
    updated_at  BIGINT NOT NULL
);

CREATE TABLE ingest_pieces (
    ingest_key  TEXT COLLATE "binary" NOT NULL,
    start       BIGINT NOT NULL,
    size        BIGINT NOT NULL,
    part_number INTEGER,
    etag        TEXT COLLATE "binary",
    hash_state  BLOB,
    PRIMARY KEY (ingest_key, start)
)
