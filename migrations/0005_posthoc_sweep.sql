-- The EMA-length sweep of post-hoc EMA: one row per run × relative width × BN mode, from the
-- `posthoc` lines of `polyak train` (its last stage) or `polyak posthoc`. A re-evaluated width
-- replaces its row. Metrics are NULL when the evaluation gave NaN (SQLite stores NaN as NULL).

CREATE TABLE posthoc_sweep (
    run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    sigma_rel REAL NOT NULL,
    bn        TEXT NOT NULL CHECK (bn IN ('synthesized', 'precise')),
    decay     REAL NOT NULL,                -- the classical EMA decay of the same width at `step`
    weights   TEXT NOT NULL,                -- phema@<sigma_rel>
    step      INTEGER NOT NULL,             -- the step synthesised at (the run's end)
    top1      REAL,
    top5      REAL,
    loss      REAL,
    PRIMARY KEY (run_id, sigma_rel, bn)
) WITHOUT ROWID;
