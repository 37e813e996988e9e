-- Model providers managed through the API. Their API keys are sealed with the master key
-- (AES-256-GCM, bound to the provider's name); they win over a configured provider of the
-- same name.
CREATE TABLE ai_providers (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    base_url   TEXT NOT NULL DEFAULT '',
    api_key    BLOB,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
