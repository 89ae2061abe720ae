#!/usr/bin/env python3
"""MLflow's runs/log-batch ingestion, the reference for `polyak bench service` (performance.md).

Usage: python3 scripts/bench_mlflow.py [--port 5055] [--batches 40]
Needs `pip install mlflow`; starts `mlflow server` on SQLite in a temporary folder, on loopback,
sends 1000-metric batches from 1 and 8 clients, prints one JSON object per client count, stops
the server. Bodies are built before the clock starts, as in polyak's bench.
"""
import argparse, json, os, random, shutil, signal, subprocess, sys, tempfile, threading, time
import urllib.request

def call(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"{}")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=5055)
    ap.add_argument("--batches", type=int, default=40, help="1000-metric batches per repetition, split over the clients")
    ap.add_argument("--reps", type=int, default=3)
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
        for clients in (1, 8):
            per = max(1, args.batches // clients)
            rates = []
            for rep in range(args.reps + 1):
                runs = [call(args.port, "runs/create", {"experiment_id": exp})["run"]["info"]["run_id"] for _ in range(clients)]
                bodies = [[json.dumps({"run_id": runs[c], "metrics": [
                    {"key": "train/loss", "value": random.random() * 3, "timestamp": 1764000000000 + b * 1000 + i, "step": b * 1000 + i}
                    for i in range(1000)]}).encode() for b in range(per)] for c in range(clients)]
                errors = []
                def work(c):
                    try:
                        for body in bodies[c]:
                            req = urllib.request.Request(f"http://127.0.0.1:{args.port}/api/2.0/mlflow/runs/log-batch", data=body,
                                                         headers={"Content-Type": "application/json"}, method="POST")
                            urllib.request.urlopen(req, timeout=300).read()
                    except Exception as e:
                        errors.append(str(e))
                start = time.perf_counter()
                threads = [threading.Thread(target=work, args=(c,)) for c in range(clients)]
                for t in threads: t.start()
                for t in threads: t.join()
                seconds = time.perf_counter() - start
                if errors:
                    raise SystemExit(f"log-batch failed: {errors[0]}")
                if rep > 0:
                    rates.append(clients * per * 1000 / seconds)
            rates.sort()
            print(json.dumps({"benchmark": "mlflow_log_batch", "clients": clients, "batch_points": 1000,
                              "points_per_s": round(rates[len(rates) // 2]), "reps_points_per_s": [round(r) for r in rates]}), flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)

if __name__ == "__main__":
    main()
