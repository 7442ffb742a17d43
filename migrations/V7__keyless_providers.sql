-- A provider entry may say that it needs no key (Ollama, vLLM, llama.cpp servers on the
-- local network): calls then go to its base URL without an Authorization header.
ALTER TABLE organization_llm_settings
    ADD COLUMN key_required INTEGER NOT NULL DEFAULT 1 CHECK (key_required IN (0, 1));
