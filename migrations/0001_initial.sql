-- Polyak tracking store, first schema. Forward-only: never edit once landed; add 0002_*.sql.

CREATE TABLE experiments (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    base_json   TEXT NOT NULL,              -- the base spec as submitted
    variants_json TEXT NOT NULL,            -- [{"name", "preset", "spec"}], normalised
    seeds_json  TEXT NOT NULL,              -- [0, 1, 2]
    baseline    TEXT NOT NULL,              -- a variant name
    created_at  REAL NOT NULL
);

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    experiment_id INTEGER REFERENCES experiments(id) ON DELETE CASCADE,
    experiment    TEXT,                     -- the spec's experiment name (filter)
    variant       TEXT,
    seed          INTEGER NOT NULL DEFAULT 0,
    name          TEXT,
    notes         TEXT NOT NULL DEFAULT '',
    tags_json     TEXT NOT NULL DEFAULT '[]',
    strategies    TEXT NOT NULL DEFAULT '', -- averaging kinds as ",ema,swa," (filter with LIKE)
    external      INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL CHECK (status IN
                    ('queued', 'running', 'completed', 'failed', 'cancelled', 'interrupted')),
    spec_json     TEXT NOT NULL,
    code_version  TEXT NOT NULL,
    created_at    REAL NOT NULL,
    started_at    REAL,
    ended_at      REAL,
    error         TEXT,
    progress_json TEXT,                     -- the newest `progress` line
    summary_json  TEXT,                     -- the `summary` line
    warnings_json TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX runs_experiment_id ON runs(experiment_id);
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_experiment ON runs(experiment);

CREATE TABLE run_tags (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    tag    TEXT NOT NULL,
    PRIMARY KEY (tag, run_id)
) WITHOUT ROWID;

-- One row per (run, key, weights): the series' identity and its `latest` summary, so points
-- carry a small integer instead of two strings, and "final value" reads need no scan.
CREATE TABLE metric_series (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    weights     TEXT NOT NULL,
    last_step   INTEGER,
    last_epoch  INTEGER,
    last_value  REAL,                       -- NULL with last_nan = 1 means NaN
    last_nan    INTEGER NOT NULL DEFAULT 0,
    last_time   REAL,
    UNIQUE (run_id, key, weights)
);

-- Metric points, unique on (run, key, weights, step) through the series. SQLite stores NaN as
-- NULL, so `value` NULL means NaN (a point always has a value); ±Infinity are stored as REAL.
CREATE TABLE metric_points (
    series_id INTEGER NOT NULL REFERENCES metric_series(id) ON DELETE CASCADE,
    step      INTEGER NOT NULL,
    epoch     INTEGER,
    value     REAL,
    time      REAL NOT NULL,
    PRIMARY KEY (series_id, step)
) WITHOUT ROWID;

CREATE VIEW metrics AS
    SELECT s.run_id, s.key, s.weights, p.step, p.epoch, p.value, p.value IS NULL AS is_nan, p.time
    FROM metric_points p JOIN metric_series s ON s.id = p.series_id;

CREATE VIEW latest AS
    SELECT run_id, key, weights, last_step AS step, last_epoch AS epoch, last_value AS value,
           last_nan AS is_nan, last_time AS time
    FROM metric_series;

CREATE TABLE grid_cells (
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    weights    TEXT NOT NULL,
    stage      TEXT NOT NULL,
    train_size INTEGER NOT NULL,
    resize     INTEGER NOT NULL,
    crop       INTEGER NOT NULL,
    top1       REAL,
    top5       REAL,
    loss       REAL,
    PRIMARY KEY (run_id, weights, stage, train_size, resize, crop)
) WITHOUT ROWID;

-- Exported weight files and checkpoints of a run (paths relative to the run folder).
CREATE TABLE artifacts (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name   TEXT NOT NULL,                   -- weight set (`raw`, `ema@0.998`) or `checkpoint:<file>`
    kind   TEXT NOT NULL CHECK (kind IN ('export', 'checkpoint')),
    path   TEXT NOT NULL,
    bytes  INTEGER,
    sha256 TEXT,
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
