-- What MLflow's REST API keeps beside Polyak's own columns: lifecycle stages (MLflow deletes are
-- soft: a restore brings the row back), experiment tags, run params (write-once) and key/value run
-- tags, and the run's user and millisecond times as the client sent them. An MLflow experiment is a
-- row of `experiments`, an MLflow run a row of `runs` (external); these tables only add to them.

CREATE TABLE mlflow_experiments (
    experiment_id    INTEGER PRIMARY KEY REFERENCES experiments(id) ON DELETE CASCADE,
    lifecycle_stage  TEXT NOT NULL DEFAULT 'active' CHECK (lifecycle_stage IN ('active', 'deleted')),
    last_update_time INTEGER NOT NULL,      -- ms
    created_here     INTEGER NOT NULL DEFAULT 0  -- created through MLflow: its variants follow its runs' tags
);

CREATE TABLE mlflow_experiment_tags (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
) WITHOUT ROWID;

CREATE TABLE mlflow_runs (
    run_id          INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    lifecycle_stage TEXT NOT NULL DEFAULT 'active' CHECK (lifecycle_stage IN ('active', 'deleted')),
    user_id         TEXT NOT NULL DEFAULT '',
    start_time      INTEGER,                -- ms, as the client sent it
    end_time        INTEGER                 -- ms
);

CREATE TABLE mlflow_params (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;

CREATE TABLE mlflow_run_tags (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
