-- Sentence embeddings (issue #10). One vector per paper, of the model that
-- made it: a model change re-embeds papers in the background, replacing
-- their rows. Vectors are unit length, f32 little-endian, `dims` long.
CREATE TABLE paper_embeddings (
    paper_id    TEXT PRIMARY KEY REFERENCES papers (id) ON DELETE CASCADE,
    -- Encoder identity: model name, weights hash, input length.
    model       TEXT NOT NULL,
    dims        INTEGER NOT NULL CHECK (dims > 0),
    vector      BLOB NOT NULL CHECK (length(vector) = 4 * dims),
    embedded_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX paper_embeddings_model ON paper_embeddings (model);

-- Topic vectors, so each distinct topic is embedded once per model (many
-- subscribers share a topic). Keyed by the text that was embedded.
CREATE TABLE topic_embeddings (
    model       TEXT NOT NULL,
    text        TEXT NOT NULL,
    dims        INTEGER NOT NULL CHECK (dims > 0),
    vector      BLOB NOT NULL CHECK (length(vector) = 4 * dims),
    used_at     TEXT NOT NULL,
    PRIMARY KEY (model, text)
) WITHOUT ROWID;
