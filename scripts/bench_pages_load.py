#!/usr/bin/env python3
"""Pages and health under load while a run trains: the last service bar of performance.md.

Usage: python3 scripts/bench_pages_load.py [--polyak .build/release/polyak] [--seconds 20]
Starts `polyak serve` on a temporary database, launches one real training run (width 16, the
whole training set: it trains through the measurement), waits until it has logged an epoch, then
runs `wrk -t2 -c64 -d<seconds>s --latency` against GET /api/health, the run's page and its
experiment page in turn. Prints one JSON object per target (requests/s, p50/p99 latency, errors,
pass against "0 errors, p99 <= 50 ms"), then stops everything. Needs Debian's `wrk`.
"""
import argparse, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time
import urllib.request

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())

def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")

def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

def wrk(port, path, seconds):
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M))
    socket_errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1])
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = ms(latency["99"])
    return {"benchmark": "under_load", "path": path, "connections": 64, "threads": 2, "seconds": seconds,
            "requests": requests, "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": ms(latency["50"]), "p99_ms": p99, "errors": socket_errors + non2xx,
            "bar": "0 errors, p99 <= 50 ms", "pass": socket_errors + non2xx == 0 and p99 <= 50}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--polyak", default=".build/release/polyak")
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    folder = tempfile.mkdtemp(prefix="polyak-load-")
    port = free_port()
    server = subprocess.Popen([os.path.abspath(args.polyak), "serve", "--port", str(port), "--db", f"{folder}/db.sqlite",
                               "--data-dir", f"{folder}/data"], cwd=folder, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(200):
            try:
                get(port, "/api/health")
                break
            except Exception:
                time.sleep(0.05)
        experiment = post(port, "/api/experiments", {"name": "load", "base": {"optim": {"epochs": 10}, "model": {"width": 16}},
                                                      "variants": ["ema"], "seeds": [0]})
        run = experiment["runs"][0]["id"]
        deadline = time.time() + 300
        while time.time() < deadline:
            r = get(port, f"/api/runs/{run}")
            if r["status"] != "queued" and (r.get("latest") or {}).get("raw", {}).get("test/top1"):
                break
            if r["status"] in ("failed", "cancelled", "completed"):
                sys.exit(f"the training run ended before the measurement: {r['status']} {r.get('error')}")
            time.sleep(1)
        for path in ("/api/health", f"/runs/{run}", f"/experiments/{experiment['id']}"):
            result = wrk(port, path, args.seconds)
            result["training"] = get(port, f"/api/runs/{run}")["status"] == "running"
            print(json.dumps(result), flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)

if __name__ == "__main__":
    main()
