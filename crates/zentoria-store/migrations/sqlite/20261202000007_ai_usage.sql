-- Per-key limits on the AI gateway and chat: the models a key may use (a JSON array of
-- `provider/model` names, aliases or `provider/*` patterns; NULL: any) and the tokens it may
-- spend per calendar month (UTC; NULL: no limit).
ALTER TABLE api_keys ADD COLUMN models TEXT;
ALTER TABLE api_keys ADD COLUMN monthly_token_budget BIGINT;

-- What each user and key spent on each model, per UTC day. Requests made with a login
-- session have key_id ''.
CREATE TABLE ai_usage (
    day               TEXT NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_id            TEXT NOT NULL,
    model             TEXT NOT NULL,
    requests          BIGINT NOT NULL DEFAULT 0,
    errors            BIGINT NOT NULL DEFAULT 0,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, user_id, key_id, model)
);
CREATE INDEX ai_usage_key_day ON ai_usage (key_id, day);
CREATE INDEX ai_usage_user_day ON ai_usage (user_id, day);
