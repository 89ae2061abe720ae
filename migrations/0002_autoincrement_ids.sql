-- Ids are never reused: a link to run 7 must not reach another run after run 7 is deleted. Plain
-- INTEGER PRIMARY KEY hands the highest id out again once its row is gone; AUTOINCREMENT never
-- does. SQLite cannot add it to a table, so runs and experiments (their ids are in URLs) are
-- rebuilt with every row and id kept. The migrator runs this with foreign keys off (dropping a
-- table would otherwise cascade) and checks them all before it commits; the other tables refer
-- to these by name, so their references hold once the new tables take the old names.

CREATE TABLE experiments_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    base_json   TEXT NOT NULL,
    variants_json TEXT NOT NULL,
    seeds_json  TEXT NOT NULL,
    baseline    TEXT NOT NULL,
    created_at  REAL NOT NULL
);
INSERT INTO experiments_new (id, name, base_json, variants_json, seeds_json, baseline, created_at)
    SELECT id, name, base_json, variants_json, seeds_json, baseline, created_at FROM experiments;
DROP TABLE experiments;
ALTER TABLE experiments_new RENAME TO experiments;

CREATE TABLE runs_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id INTEGER REFERENCES experiments(id) ON DELETE CASCADE,
    experiment    TEXT,
    variant       TEXT,
    seed          INTEGER NOT NULL DEFAULT 0,
    name          TEXT,
    notes         TEXT NOT NULL DEFAULT '',
    tags_json     TEXT NOT NULL DEFAULT '[]',
    strategies    TEXT NOT NULL DEFAULT '',
    external      INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL CHECK (status IN
                    ('queued', 'running', 'completed', 'failed', 'cancelled', 'interrupted')),
    spec_json     TEXT NOT NULL,
    code_version  TEXT NOT NULL,
    created_at    REAL NOT NULL,
    started_at    REAL,
    ended_at      REAL,
    error         TEXT,
    progress_json TEXT,
    summary_json  TEXT,
    warnings_json TEXT NOT NULL DEFAULT '[]'
);
INSERT INTO runs_new (id, experiment_id, experiment, variant, seed, name, notes, tags_json, strategies, external, status,
                      spec_json, code_version, created_at, started_at, ended_at, error, progress_json, summary_json,
                      warnings_json)
    SELECT id, experiment_id, experiment, variant, seed, name, notes, tags_json, strategies, external, status,
           spec_json, code_version, created_at, started_at, ended_at, error, progress_json, summary_json, warnings_json
    FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_experiment_id ON runs(experiment_id);
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_experiment ON runs(experiment);
