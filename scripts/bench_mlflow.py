#!/usr/bin/env python3
"""MLflow's runs/log-batch ingestion and runs/search, the reference for `polyak bench service`
(performance.md; `--only mlflow` there sends the same requests to Polyak's MLflow routes).

Usage: /work/venv-mlflow/bin/python scripts/bench_mlflow.py [--port 5055] [--batches 80] [--reps 3] [--only log-batch|search]
Needs `pip install 'mlflow>=3,<4'` in that python; starts `mlflow server` on SQLite in a temporary
folder, on loopback, sends 1000-metric batches from 1 and 8 clients, then searches 1 000 runs
(3 params, 5 metrics of 20 steps each) with a metric filter and an order on it, prints one JSON
object per benchmark, stops the server. Bodies are built before the clock starts, as in polyak's bench.
"""
import argparse, concurrent.futures, json, os, random, shutil, signal, subprocess, sys, tempfile, threading, time
import urllib.request

def call(port, path, body, attempts=3):
    for attempt in range(attempts):  # a request in a worker that uvicorn kills under load is dropped
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return json.loads(r.read() or b"{}")
        except (urllib.error.URLError, ConnectionError) as e:
            if isinstance(e, urllib.error.HTTPError) or attempt == attempts - 1:
                raise

SEARCH_FILTER = "metrics.accuracy > 0.5"
SEARCH_ORDER = "metrics.accuracy DESC"

def version():
    from importlib.metadata import version as v
    return v("mlflow")

def search_run_body(run, index):
    """Run `index` of the search set, as BenchMLflow.swift builds it: half the runs pass the filter."""
    metrics = []
    for key in ("accuracy", "loss", "val_accuracy", "val_loss", "lr"):
        for step in range(20):
            last = (index % 100) / 100 + 0.005
            value = last * (step + 1) / 20 if key == "accuracy" else (index * 20 + step) / 1e4
            metrics.append({"key": key, "value": value, "timestamp": 1764000000000 + step, "step": step})
    params = [{"key": "lr", "value": f"0.{index % 7 + 1}"}, {"key": "width", "value": str(16 << (index % 3))},
              {"key": "seed", "value": str(index)}]
    return {"run_id": run, "metrics": metrics, "params": params}

def search(args):
    """runs/search over 1 000 runs with a metric filter and an order on it, all matches in one page."""
    exp = call(args.port, "experiments/create", {"name": f"bench-search-{time.time()}"})["experiment_id"]
    def make(i):  # the setup, not timed, from 8 threads: MLflow takes minutes for it one at a time
        run = call(args.port, "runs/create", {"experiment_id": exp})["run"]["info"]["run_id"]
        call(args.port, "runs/log-batch", search_run_body(run, i))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(make, range(1000)))
    query = {"experiment_ids": [exp], "filter": SEARCH_FILTER, "order_by": [SEARCH_ORDER], "max_results": 1000}
    times, found = [], 0
    for rep in range(max(args.reps, 5) + 1):
        req = urllib.request.Request(f"http://127.0.0.1:{args.port}/api/2.0/mlflow/runs/search", data=json.dumps(query).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        start = time.perf_counter()
        with urllib.request.urlopen(req, timeout=120) as r:
            body = r.read()
        if rep > 0:
            times.append((time.perf_counter() - start) * 1000)  # the answer's parsing is the client's, not timed
        found = len(json.loads(body).get("runs", []))
    med = sorted(times)[len(times) // 2]
    print(json.dumps({"benchmark": "mlflow_search_runs", "server": f"mlflow {version()}", "runs": 1000, "found": found,
                      "filter": SEARCH_FILTER, "order_by": SEARCH_ORDER, "ms": round(med, 2),
                      "reps_ms": [round(t, 2) for t in times], "loadavg": os.getloadavg()[0]}), flush=True)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=5055)
    ap.add_argument("--batches", type=int, default=80, help="1000-metric batches per repetition, split over the clients")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", choices=("log-batch", "search"), help="one of the two benchmarks (both by default)")
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="mlflow-bench-")
    mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
    server = subprocess.Popen([mlflow, "server", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
                               "--default-artifact-root", f"{folder}/artifacts", "--host", "127.0.0.1", "--port", str(args.port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{args.port}/health", timeout=1)
                break
            except Exception:
                time.sleep(0.2)
        exp = call(args.port, "experiments/create", {"name": f"bench-{time.time()}"})["experiment_id"]
        for clients in (1, 8) if args.only != "search" else ():
            per = max(1, args.batches // clients)
            rates, dropped = [], 0
            for rep in range(args.reps + 1):
                runs = [call(args.port, "runs/create", {"experiment_id": exp})["run"]["info"]["run_id"] for _ in range(clients)]
                bodies = [[json.dumps({"run_id": runs[c], "metrics": [
                    {"key": "train/loss", "value": random.random() * 3, "timestamp": 1764000000000 + b * 1000 + i, "step": b * 1000 + i}
                    for i in range(1000)]}).encode() for b in range(per)] for c in range(clients)]
                errors, retries = [], []
                def work(c):
                    # Under load, uvicorn's supervisor kills a worker that misses its ping and the request
                    # in it is dropped: it is sent again (at most twice more) and counted, the time kept.
                    for body in bodies[c]:
                        for attempt in range(3):
                            req = urllib.request.Request(f"http://127.0.0.1:{args.port}/api/2.0/mlflow/runs/log-batch", data=body,
                                                         headers={"Content-Type": "application/json"}, method="POST")
                            try:
                                urllib.request.urlopen(req, timeout=300).read()
                                break
                            except Exception as e:
                                if attempt == 2:
                                    errors.append(str(e))
                                    return
                                retries.append(str(e))
                start = time.perf_counter()
                threads = [threading.Thread(target=work, args=(c,)) for c in range(clients)]
                for t in threads: t.start()
                for t in threads: t.join()
                seconds = time.perf_counter() - start
                if errors:
                    raise SystemExit(f"log-batch failed: {errors[0]}")
                if rep > 0:
                    rates.append(clients * per * 1000 / seconds)
                    dropped += len(retries)
            rates.sort()
            print(json.dumps({"benchmark": "mlflow_log_batch", "server": f"mlflow {version()}", "clients": clients,
                              "batch_points": 1000, "requests": clients * per, "points_per_s": round(rates[len(rates) // 2]),
                              "reps_points_per_s": [round(r) for r in rates], "resent_requests": dropped, "loadavg": os.getloadavg()[0]}), flush=True)
        if args.only != "log-batch":
            search(args)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)

if __name__ == "__main__":
    main()
