-- Placeholder so branch s23-mlflow builds alone (migrations are numbered without gaps and this
-- branch's own is 0008). Drop this file when merging: another branch owns migration 0004.
SELECT 1;
