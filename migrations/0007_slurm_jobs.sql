-- Runs trained as Slurm jobs (`polyak serve --executor slurm`): the job's id, so a restarted server
-- re-attaches to it instead of submitting the run again, and what Slurm last said about it
-- ("PENDING (Resources)"), shown on the run. Both NULL for runs this server trains itself.
ALTER TABLE runs ADD COLUMN slurm_job_id INTEGER;
ALTER TABLE runs ADD COLUMN slurm_state TEXT;
CREATE INDEX runs_slurm_job ON runs(slurm_job_id) WHERE slurm_job_id IS NOT NULL;
