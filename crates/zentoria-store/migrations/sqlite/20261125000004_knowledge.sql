-- Knowledge: collections, files (content-addressed blobs on disk, metadata here), their tags,
-- the chunks ingestion cuts them into, and a change log that search indexes tail. The database
-- is the source of truth; indexes are derived from it and can be rebuilt at any time.

CREATE TABLE collections (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX collections_owner_name ON collections (owner_id, lower(name));

CREATE TABLE files (
    id            TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    collection_id TEXT REFERENCES collections (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    mime          TEXT NOT NULL,
    language      TEXT,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    status        TEXT NOT NULL
        CHECK (status IN ('queued', 'extracting', 'embedding', 'indexing', 'ready', 'failed')),
    error         TEXT,
    chunk_count   INTEGER NOT NULL DEFAULT 0,
    pages         INTEGER,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX files_owner_sha256 ON files (owner_id, sha256);
CREATE INDEX files_owner_created ON files (owner_id, created_at);
CREATE INDEX files_collection ON files (collection_id);
CREATE INDEX files_sha256 ON files (sha256);

CREATE TABLE file_tags (
    file_id TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (file_id, tag)
);
CREATE INDEX file_tags_tag ON file_tags (tag);

CREATE TABLE chunks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id    TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    ord        INTEGER NOT NULL,
    text       TEXT NOT NULL,
    start_char BIGINT NOT NULL,
    end_char   BIGINT NOT NULL,
    page       INTEGER,
    heading    TEXT,
    tokens     INTEGER NOT NULL,
    UNIQUE (file_id, ord)
);

-- Every change to what a file contributes to search (ingested, re-tagged, moved, deleted).
-- Sequence numbers are handed out in commit order, so an index that has applied everything
-- up to N has missed nothing before it.
CREATE TABLE knowledge_changes (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id TEXT NOT NULL,
    at      BIGINT NOT NULL
);

-- Old changes are pruned once the index has applied them; `pruned_through` remembers how far,
-- so an index that starts from an earlier position (a new or lost one) rebuilds instead of
-- tailing a log with a hole in it.
CREATE TABLE knowledge_state (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
