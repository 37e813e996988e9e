-- Chat: sessions owned by a user, and their messages in order. An assistant message records
-- the model that answered, its token counts, latency and time to first token, and the
-- numbered citations (JSON) its answer drew on.

CREATE TABLE chat_sessions (
    id            TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title         TEXT NOT NULL,
    model         TEXT,
    system_prompt TEXT,
    knowledge     BOOLEAN NOT NULL DEFAULT FALSE,
    collection_id TEXT REFERENCES collections (id) ON DELETE SET NULL,
    message_count INTEGER NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX chat_sessions_owner_updated ON chat_sessions (owner_id, updated_at);

CREATE TABLE chat_messages (
    id                TEXT PRIMARY KEY,
    session_id        TEXT NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    role              TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content           TEXT NOT NULL,
    model             TEXT,
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    latency_ms        BIGINT,
    ttft_ms           BIGINT,
    finish_reason     TEXT,
    citations         TEXT,
    created_at        BIGINT NOT NULL
);
CREATE INDEX chat_messages_session ON chat_messages (session_id, created_at, id);
