-- How often a run's Slurm job was interrupted (preempted, its node failed) and the run submitted
-- again from its last checkpoint: `polyak serve --executor slurm` stops after
-- `--slurm-max-resubmissions`, so a run on a flaky node fails naming the count instead of looping.
-- 0 for every other run.
ALTER TABLE runs ADD COLUMN slurm_interruptions INTEGER NOT NULL DEFAULT 0;
