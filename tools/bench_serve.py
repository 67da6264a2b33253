#!/usr/bin/env python3
"""Load benchmark of `varcode serve` (not a test): requests/s and p50 / p99 latency of
POST /v1/images/generations at 1, 8 and 32 concurrent clients.

Starts `varcode serve` on a free loopback port with the built-in Fashion-MNIST pair (or the model
flags given after `--`), or measures a running server with --url. Python standard library only.

  /usr/bin/python3 tools/bench_serve.py --cli build/varcode
  /usr/bin/python3 tools/bench_serve.py --cli build/varcode --requests 256 --max-batch 16 -- --dtype f32
  /usr/bin/python3 tools/bench_serve.py --url http://127.0.0.1:8080 --concurrency 1,8,32,64
"""
import argparse
import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse


def post(host, port, body, key):
    conn = http.client.HTTPConnection(host, port, timeout=600)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    conn.request("POST", "/v1/images/generations", json.dumps(body), headers)
    res = conn.getresponse()
    data = res.read()
    conn.close()
    return res.status, data


def percentile(sorted_values, q):
    """Nearest-rank percentile."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def run_level(host, port, clients, total, n, key, seed0):
    per_client = max(1, -(-total // clients))
    latencies, errors = [], []
    lock = threading.Lock()

    def client(c):
        for k in range(per_client):
            body = {"prompt": str((c + k) % 10), "n": n, "seed": seed0 + c * per_client + k}
            t0 = time.perf_counter()
            try:
                status, data = post(host, port, body, key)
                ok = status == 200 and len(json.loads(data)["data"]) == n
            except Exception as e:  # noqa: BLE001 - report every failure
                status, ok = repr(e), False
            dt = time.perf_counter() - t0
            with lock:
                (latencies if ok else errors).append(dt if ok else status)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    latencies.sort()
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "wall_s": wall,
            "requests_per_s": len(latencies) / wall, "images_per_s": len(latencies) * n / wall,
            "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99),
            "error_examples": [str(e) for e in errors[:3]]}


def batch_sizes(host, port, key):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/metrics", headers={"Authorization": "Bearer " + key} if key else {})
    text = conn.getresponse().read().decode()
    conn.close()
    get = lambda name: float(re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M).group(1))  # noqa: E731
    return get("varcode_batch_size_sum"), get("varcode_batch_size_count")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", help="the varcode binary to start (default: measure --url)")
    ap.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8080")
    ap.add_argument("--concurrency", default="1,8,32", help="client counts (default 1,8,32)")
    ap.add_argument("--requests", type=int, default=128, help="requests per level (default 128)")
    ap.add_argument("--n", type=int, default=1, help="images per request (default 1)")
    ap.add_argument("--warmup", type=int, default=8, help="requests before measuring (default 8)")
    ap.add_argument("--max-batch", type=int, default=8, help="--max-batch of the started server (default 8)")
    ap.add_argument("--batch-window", type=int, default=20, help="--batch-window of the started server (default 20)")
    ap.add_argument("--api-key", default="", help="bearer token for --url")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    ap.add_argument("serve_args", nargs="*", help="after --: more `varcode serve` flags (model flags, --dtype ...)")
    a = ap.parse_args()
    if bool(a.cli) == bool(a.url):
        ap.error("give exactly one of --cli or --url")
    proc = None
    try:
        if a.cli:
            proc = subprocess.Popen([a.cli, "serve", "--port", "0", "--max-batch", str(a.max_batch),
                                     "--batch-window", str(a.batch_window), "--max-queue", "256"] + a.serve_args,
                                    stdout=subprocess.PIPE, text=True)
            m = re.search(r"http://([\d.]+):(\d+)", proc.stdout.readline())
            if not m:
                sys.exit("varcode serve did not start")
            host, port = m.group(1), int(m.group(2))
        else:
            u = urllib.parse.urlparse(a.url)
            host, port = u.hostname, u.port or 80
        run_level(host, port, 1, a.warmup, a.n, a.api_key, 1 << 40)
        results = []
        for c in [int(x) for x in a.concurrency.split(",")]:
            before = batch_sizes(host, port, a.api_key)
            r = run_level(host, port, c, a.requests, a.n, a.api_key, c << 32)
            after = batch_sizes(host, port, a.api_key)
            r["mean_batch"] = (after[0] - before[0]) / max(after[1] - before[1], 1)
            results.append(r)
        if a.json:
            print(json.dumps({"n": a.n, "max_batch": a.max_batch, "batch_window_ms": a.batch_window,
                              "levels": results}))
        else:
            print("POST /v1/images/generations, %d image(s) per request, max batch %d, batch window %d ms"
                  % (a.n, a.max_batch, a.batch_window))
            print("%8s %9s %7s %10s %9s %9s %9s %10s" % ("clients", "requests", "errors", "req/s", "images/s",
                                                         "p50 ms", "p99 ms", "mean batch"))
            for r in results:
                print("%8d %9d %7d %10.2f %9.2f %9.1f %9.1f %10.2f" % (r["clients"], r["requests"], r["errors"],
                                                                     r["requests_per_s"], r["images_per_s"],
                                                                     r["p50_ms"], r["p99_ms"], r["mean_batch"]))
        if any(r["errors"] for r in results):
            print("errors: %s" % [r["error_examples"] for r in results if r["errors"]], file=sys.stderr)
            sys.exit(1)
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)


if __name__ == "__main__":
    main()
