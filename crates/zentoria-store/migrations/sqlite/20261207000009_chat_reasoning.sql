-- What a reasoning model thought before its answer (its `reasoning_content`, Ollama's
-- `thinking`, Claude's thinking blocks as text); none for other models and for questions.
ALTER TABLE chat_messages ADD COLUMN reasoning TEXT;
