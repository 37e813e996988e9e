-- Embeddings of chunks, as little-endian f32, keyed by the embedder that made them
-- (e.g. `local:all-MiniLM-L6-v2`). The database is their source of truth: the vector index is
-- rebuilt from here without re-embedding, and a change of embedder re-embeds in the background
-- (rows of another embedder are replaced as their chunks are embedded again).
CREATE TABLE chunk_vectors (
    chunk_id BIGINT PRIMARY KEY REFERENCES chunks (id) ON DELETE CASCADE,
    embedder TEXT NOT NULL,
    vector   BYTEA NOT NULL
);
CREATE INDEX chunk_vectors_embedder ON chunk_vectors (embedder);
