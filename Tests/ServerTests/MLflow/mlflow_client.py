"""A user's MLflow-instrumented script, unchanged, pointed at a live Polyak (MLflowClientTests runs it).

Environment: MLFLOW_TRACKING_URI (the server), MLFLOW_TRACKING_TOKEN (its token), ARTIFACT_DIR (a
scratch folder). Every check is an assert; the last line printed is a JSON summary of what was
logged (run ids, variants, seeds, final values as the script computed them) for the Swift side to
compare with Polyak's own API and pages.
"""

import json
import math
import os
import sys

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

scratch = os.environ["ARTIFACT_DIR"]
mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
client = MlflowClient()


def refused(call, code, *words):
    """`call` raises MlflowException with `code` and every word in its message."""
    try:
        call()
    except MlflowException as e:
        assert e.error_code == code, (e.error_code, str(e))
        for w in words:
            assert w in str(e), (w, str(e))
        return str(e)
    raise AssertionError(f"expected {code}")


def top1(variant, seed, step, weights="raw"):
    """The script's own accuracy curve: what the comparison must show."""
    bonus = {"none": 0.0, "ema": 0.02}[variant] + (0.015 + 0.002 * seed if weights != "raw" else 0.0)
    return round(0.70 + 0.05 * step + 0.01 * seed + bonus, 6)


# Experiments: create (with the baseline tag), set, get by name, names are unique.
exp_id = mlflow.create_experiment("mlflow-compare", tags={"polyak.baseline": "none", "team": "vision"})
assert isinstance(exp_id, str) and exp_id.isdigit(), exp_id
experiment = mlflow.set_experiment("mlflow-compare")
assert experiment.experiment_id == exp_id and experiment.tags["team"] == "vision"
refused(lambda: mlflow.create_experiment("mlflow-compare"), "RESOURCE_ALREADY_EXISTS", "already exists")
refused(lambda: client.get_experiment("999999"), "RESOURCE_DOES_NOT_EXIST")

# Two variants × three seeds, each run a user's training loop.
runs = []
for variant in ["none", "ema"]:
    for seed in [0, 1, 2]:
        with mlflow.start_run(run_name=f"{variant}-seed{seed}", tags={"polyak.variant": variant}) as run:
            mlflow.set_tag("polyak.seed", str(seed))
            mlflow.log_param("lr", 0.1)
            mlflow.log_params({"variant": variant, "seed": seed, "epochs": 3})
            for step in [1, 2, 3]:
                mlflow.log_metric("test/top1", top1(variant, seed, step), step=step)
                extra = {"train/loss": round(2.0 / step + 0.1 * seed, 6)}
                if variant == "ema":
                    extra["test/top1:ema@0.998"] = top1(variant, seed, step, "ema@0.998")
                mlflow.log_metrics(extra, step=step)
            path = os.path.join(scratch, f"notes-{variant}-{seed}.txt")
            with open(path, "w") as f:
                f.write(f"variant {variant} seed {seed}\n")
            mlflow.log_artifact(path)
            finals = {"raw": top1(variant, seed, 3)}
            if variant == "ema":
                finals["ema@0.998"] = top1(variant, seed, 3, "ema@0.998")
            runs.append({"run_id": run.info.run_id, "variant": variant, "seed": seed, "finals": finals})

# A run's view: params, tags, latest metrics; history with steps; paging through max_results.
first = client.get_run(runs[0]["run_id"])
assert first.info.status == "FINISHED" and first.info.lifecycle_stage == "active"
assert first.data.params == {"lr": "0.1", "variant": "none", "seed": "0", "epochs": "3"}, first.data.params
assert first.data.tags["polyak.variant"] == "none" and first.data.tags["polyak.seed"] == "0"
assert first.data.metrics["test/top1"] == top1("none", 0, 3)
history = client.get_metric_history(runs[0]["run_id"], "test/top1")
assert [(m.step, m.value) for m in history] == [(s, top1("none", 0, s)) for s in [1, 2, 3]], history
assert all(m.timestamp > 1_600_000_000_000 for m in history)
ema_history = client.get_metric_history(runs[3]["run_id"], "test/top1:ema@0.998")
assert [m.value for m in ema_history] == [top1("ema", 0, s, "ema@0.998") for s in [1, 2, 3]]
page = client._tracking_client.store.get_metric_history(runs[0]["run_id"], "test/top1", max_results=2)
assert [m.step for m in page] == [1, 2] and page.token, page
rest = client._tracking_client.store.get_metric_history(runs[0]["run_id"], "test/top1", max_results=2, page_token=page.token)
assert [m.step for m in rest] == [3] and not rest.token

# Search: a filter on a metric, a param and a tag, ordered by a metric.
found = client.search_runs(
    [exp_id], "metrics.`test/top1` > 0.86 AND params.lr = '0.1' AND tags.`polyak.variant` ILIKE 'E%'",
    order_by=["metrics.`test/top1` DESC"])
assert [r.info.run_id for r in found] == [runs[5]["run_id"], runs[4]["run_id"], runs[3]["run_id"]], [r.info.run_name for r in found]
found = client.search_runs([exp_id], "attributes.run_name IN ('none-seed1', 'ema-seed2')", order_by=["attributes.run_name"])
assert [r.info.run_name for r in found] == ["ema-seed2", "none-seed1"]
paged = client.search_runs([exp_id], max_results=4)
assert len(paged) == 4 and paged.token
assert len(client.search_runs([exp_id], max_results=4, page_token=paged.token)) == 2
message = refused(lambda: client.search_runs([exp_id], "metrics.loss >> 1"), "INVALID_PARAMETER_VALUE", "position")

# Nested runs; each end status; NaN and infinities kept; param write-once; conflicting metric refused.
with mlflow.start_run(run_name="parent", tags={"kind": "sweep"}) as parent:
    with mlflow.start_run(run_name="child", nested=True) as child:
        mlflow.log_metric("weird", float("nan"), step=0)
        mlflow.log_metric("weird", float("inf"), step=1)
        mlflow.log_metric("weird", float("-inf"), step=2)
        mlflow.log_metric("weird", float("-inf"), step=2)  # a retry: the same point again is fine
        refused(lambda: mlflow.log_metric("weird", 1.0, step=2), "RESOURCE_CONFLICT", "weird", "step 2")
        mlflow.log_param("p", "1")
        mlflow.log_param("p", "1")
        refused(lambda: mlflow.log_param("p", "2"), "INVALID_PARAMETER_VALUE", "Changing param values is not allowed")
        mlflow.set_tag("temp", "x")
        client.delete_tag(child.info.run_id, "temp")
        refused(lambda: client.delete_tag(child.info.run_id, "temp"), "RESOURCE_DOES_NOT_EXIST")
child_run = client.get_run(child.info.run_id)
assert child_run.data.tags["mlflow.parentRunId"] == parent.info.run_id, child_run.data.tags
assert "temp" not in child_run.data.tags
weird = client.get_metric_history(child.info.run_id, "weird")
assert math.isnan(weird[0].value) and weird[1].value == math.inf and weird[2].value == -math.inf, weird

failed = mlflow.start_run(run_name="failed")
mlflow.end_run(status="FAILED")
killed = mlflow.start_run(run_name="killed")
mlflow.end_run(status="KILLED")
assert client.get_run(failed.info.run_id).info.status == "FAILED"
assert client.get_run(killed.info.run_id).info.status == "KILLED"
assert client.get_run(killed.info.run_id).info.end_time is not None

# Batch caps with MLflow's words (the client splits big batches itself, so this one is sent by hand).
import requests

many = [{"key": "m", "value": 1.0, "timestamp": 1_700_000_000_000, "step": i} for i in range(1001)]
answer = requests.post(
    os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/runs/log-batch",
    json={"run_id": failed.info.run_id, "metrics": many},
    headers={"Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]})
assert answer.status_code == 400, answer.text
assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE", answer.text
assert "A batch logging request can contain at most 1000 metrics. Got 1001 metrics." in answer.json()["message"], answer.text
assert client.get_metric_history(failed.info.run_id, "m") == []

# Delete and restore: a deleted run leaves the default search and comes back.
client.delete_run(killed.info.run_id)
assert killed.info.run_id not in [r.info.run_id for r in client.search_runs([exp_id])]
assert killed.info.run_id in [r.info.run_id for r in client.search_runs([exp_id], run_view_type=3)]
refused(lambda: client.log_param(killed.info.run_id, "x", "1"), "INVALID_PARAMETER_VALUE", "active")
client.restore_run(killed.info.run_id)
assert client.get_run(killed.info.run_id).info.lifecycle_stage == "active"

# Artifacts: listed and downloaded back; traversal refused.
listed = client.list_artifacts(runs[0]["run_id"])
assert [(f.path, f.is_dir, f.file_size) for f in listed] == [("notes-none-0.txt", False, 20)], listed
back = mlflow.artifacts.download_artifacts(run_id=runs[0]["run_id"], artifact_path="notes-none-0.txt", dst_path=scratch + "/dl")
assert open(back).read() == "variant none seed 0\n"

# The token: without it, writes are refused.
token = os.environ.pop("MLFLOW_TRACKING_TOKEN")
try:
    client.set_tag(runs[0]["run_id"], "x", "y")
    raise AssertionError("a write without the token passed")
except MlflowException as e:
    assert "401" in str(e) or "token" in str(e), str(e)
os.environ["MLFLOW_TRACKING_TOKEN"] = token

print(json.dumps({
    "experiment_id": exp_id, "runs": runs, "parent": parent.info.run_id, "child": child.info.run_id,
    "failed": failed.info.run_id, "killed": killed.info.run_id, "filter_error": message,
}))
sys.stdout.flush()
