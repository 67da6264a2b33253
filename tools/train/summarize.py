"""Print the state of every training stage (steps, CPU time, latest and final losses) from
$WORK_DIR/*/log.csv, val.csv and final.json: the figures for models/README.md.

    /usr/bin/python3 tools/train/summarize.py
"""
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import WORK_DIR  # noqa: E402


def last_row(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return rows[-1] if rows else None


def main():
    total_cpu = 0.0
    for stage in ("vae", "tokens", "classifier", "drafter", "refiner"):
        d = os.path.join(WORK_DIR, stage)
        if not os.path.isdir(d):
            print(f"{stage:10s} not started")
            continue
        done = os.path.exists(os.path.join(d, "DONE"))
        print(f"{stage:10s} {'DONE' if done else 'in progress / stopped'}")
        row = last_row(os.path.join(d, "log.csv"))
        if row:
            print("  last train log:", {k: v for k, v in row.items() if v != ""})
            total_cpu += float(row.get("cpu_s") or 0)
        v = last_row(os.path.join(d, "val.csv"))
        if v:
            print("  last validation:", v)
        fj = os.path.join(d, "final.json")
        if os.path.exists(fj):
            print("  final:", json.dumps(json.load(open(fj))))
    print(f"CPU time in the logged training stages (process CPU seconds, both threads): {total_cpu:.0f} s"
          f" = {total_cpu / 3600:.2f} h")


if __name__ == "__main__":
    main()
