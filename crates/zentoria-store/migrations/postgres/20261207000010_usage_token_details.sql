-- Of the prompt tokens counted, those the provider read from its prompt cache (billed for
-- less); of the completion tokens, those a reasoning model spent thinking.
ALTER TABLE ai_usage ADD COLUMN cached_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ai_usage ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0;
