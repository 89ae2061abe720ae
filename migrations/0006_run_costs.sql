-- Where a completed run's time went (its trainer summary's `timing`), attributed for the cost
-- columns of the comparison: one row for the parts all its weight sets share (setup, training
-- steps, teacher forwards, checkpoints), `weights` = '', and one per weight set for that set's
-- own parts (evaluation, grid, averaging updates, BN recomputation, FixRes, export). Runs that
-- finished before this table existed have no rows: their cost is unknown, not zero.

CREATE TABLE run_costs (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    weights TEXT NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (run_id, weights)
) WITHOUT ROWID;
