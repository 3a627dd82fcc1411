-- The image service's local image store (cairn.images). Bytes are content-store blobs in
-- the images namespace; these rows say which images exist and which names point at them.
-- An image's id is its config digest (as Docker's). Intermediate images of a build have
-- a parent (the image of the previous build step); pulled images have none.
CREATE TABLE images (
    id                  TEXT COLLATE "binary" NOT NULL PRIMARY KEY,   -- sha256:<hex> of the config blob
    manifest_digest     TEXT COLLATE "binary" NOT NULL,
    manifest_media_type TEXT COLLATE "binary" NOT NULL,
    config_media_type   TEXT COLLATE "binary" NOT NULL,
    created             TEXT COLLATE "binary" NOT NULL DEFAULT '',    -- the config's "created" (RFC 3339)
    size                BIGINT  NOT NULL,               -- sum of uncompressed layer sizes
    parent              TEXT COLLATE "binary",                           -- image id of the previous build step
    added_at            BIGINT  NOT NULL
);
CREATE INDEX images_parent ON images (parent);

-- The layers of each image, in order: compressed blob and uncompressed identity.
CREATE TABLE image_layers (
    image_id          TEXT COLLATE "binary" NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    position          INTEGER NOT NULL,
    digest            TEXT COLLATE "binary" NOT NULL,   -- compressed blob (manifest layers[].digest)
    media_type        TEXT COLLATE "binary" NOT NULL,
    size              BIGINT  NOT NULL,
    diff_id           TEXT COLLATE "binary" NOT NULL,   -- sha256 of the uncompressed tar
    uncompressed_size BIGINT  NOT NULL,
    chain_id          TEXT COLLATE "binary" NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX image_layers_chain ON image_layers (chain_id);

-- Every blob an image holds (index, manifest, config, layers): the roots garbage
-- collection will keep.
CREATE TABLE image_blobs (
    image_id TEXT COLLATE "binary" NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    digest   TEXT COLLATE "binary" NOT NULL,
    PRIMARY KEY (image_id, digest)
);
CREATE INDEX image_blobs_digest ON image_blobs (digest);

-- Names: a tag (docker.io/library/busybox:latest) or a digest reference
-- (docker.io/library/busybox@sha256:...) pointing at one image. A tag moves.
CREATE TABLE image_refs (
    name       TEXT COLLATE "binary" NOT NULL PRIMARY KEY,   -- the full normalised reference
    repository TEXT COLLATE "binary" NOT NULL,               -- registry/repository
    kind       TEXT COLLATE "binary" NOT NULL,               -- tag | digest
    image_id   TEXT COLLATE "binary" NOT NULL REFERENCES images (id),
    created_at BIGINT  NOT NULL
);
CREATE INDEX image_refs_image ON image_refs (image_id);
CREATE INDEX image_refs_repository ON image_refs (repository);

-- The build cache: a step's inputs (parent image, instruction, sources) -> its image.
CREATE TABLE image_build_cache (
    key      TEXT COLLATE "binary" NOT NULL PRIMARY KEY,
    image_id TEXT COLLATE "binary" NOT NULL REFERENCES images (id) ON DELETE CASCADE
);
CREATE INDEX image_build_cache_image ON image_build_cache (image_id);
