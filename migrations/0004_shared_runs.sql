-- Shared trajectories: variants of an experiment that differ only in strategies that never change
-- training (EMA, post-hoc EMA) train one run per seed with the union of their weight sets. A row
-- says which weight set of such a run (`run_weights`) one variant reads, under the variant's own
-- name (`weights`). A run without rows is its `variant`'s alone, names unchanged: every run stored
-- before this migration reads exactly as it did.

CREATE TABLE run_weight_shares (
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,           -- the experiment's variant order, then the variant's sets
    variant     TEXT NOT NULL,
    weights     TEXT NOT NULL,              -- the name in the variant (`ema@0.999`)
    run_weights TEXT NOT NULL,              -- the name in the run (`ema@0.999~ema-warmup`)
    PRIMARY KEY (run_id, position),
    UNIQUE (run_id, variant, weights)
) WITHOUT ROWID;
CREATE INDEX run_weight_shares_sets ON run_weight_shares(run_id, run_weights);
CREATE INDEX run_weight_shares_variant ON run_weight_shares(variant, run_id);
