"""Sampling settings compared per row (issue #19: models/sampling.json, the built-in models' own
defaults). Each line of --grid is `ROW FLAGS...`: ROW is `drafter`, `refiner`, `codeN` (the
shipped pair, N drafter scales) or `codeN-finetuned` (the drafter with --tuned-refiner); FLAGS are varcode's sampling flags. Every line makes
--per-class images of each class with varcode (seed --seed: keep it apart from the model card's
evaluation seed, 2026, so that the settings chosen here are scored on other images), scored by
tools/eval/score.py; one JSON line per result in --out, kept, so a rerun resumes.

    printf 'code3 --temperature 1.1,1.1,1.1,0.4,0.4,0.4\\ndrafter --temperature 1\\n' > grid.txt
    /usr/bin/python3 tools/eval/sampling_sweep.py --grid grid.txt --out sweep.jsonl
    /usr/bin/python3 tools/eval/sampling_sweep.py --out sweep.jsonl --table   # the best per row
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "train"))
from common import MODELS_DIR  # noqa: E402
from score import score  # noqa: E402


def row_flags(row, tuned_refiner):
    m = lambda f: os.path.join(MODELS_DIR, f)  # noqa: E731
    if row.startswith("code") and row.endswith("-finetuned") and row[4:-10].isdigit():
        if not tuned_refiner:
            raise SystemExit(f"sampling_sweep: row '{row}' needs --tuned-refiner")
        return ["--drafter", m("fashion_drafter.pth"), "--refiner", tuned_refiner, "--draft-steps", row[4:-10]]
    if row == "drafter":
        return ["--model", m("fashion_drafter.pth")]
    if row == "refiner":
        return ["--model", m("fashion_refiner.pth")]
    if row.startswith("code") and row[4:].isdigit():
        return ["--drafter", m("fashion_drafter.pth"), "--refiner", m("fashion_refiner.pth"), "--draft-steps", row[4:]]
    raise SystemExit(f"sampling_sweep: row '{row}': expected drafter, refiner, codeN or codeN-finetuned")


def table(results):
    best = {}
    for r in results:
        if r["row"] not in best or r["fid"] < best[r["row"]]["fid"]:
            best[r["row"]] = r
    print("| row | tried | best FID | class accuracy | settings |")
    print("|---|---|---|---|---|")
    for row, r in sorted(best.items()):
        tried = sum(x["row"] == row for x in results)
        print(f"| {row} | {tried} | {r['fid']:.2f} | {100 * r['accuracy']:.1f}% | `{r['sampling']}` |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--varcode", default="build/varcode")
    ap.add_argument("--grid", help="a file of lines `ROW FLAGS...` ('#' starts a comment)")
    ap.add_argument("--out", required=True, help="JSON lines, one per result; appended, and read to resume")
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dtype", default="f32")
    ap.add_argument("--tuned-refiner", help="the refiner of rows codeN-finetuned (finetune_code.py's export)")
    ap.add_argument("--table", action="store_true", help="print the best settings of every row in --out")
    args = ap.parse_args()
    results = [json.loads(line) for line in open(args.out)] if os.path.exists(args.out) else []
    if args.grid:
        done = {(r["row"], r["sampling"], r["per_class"], r["seed"]) for r in results}
        labels = np.repeat(np.arange(10), args.per_class)
        for line in open(args.grid):
            line = line.split("#")[0].strip()
            if not line:
                continue
            row, _, sampling = line.partition(" ")
            sampling = " ".join(sampling.split())
            if (row, sampling, args.per_class, args.seed) in done:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                npy = os.path.join(tmp, "images.npy")
                cmd = [args.varcode, "generate", "--vae", os.path.join(MODELS_DIR, "fashion_vae.pth"), *row_flags(row, args.tuned_refiner),
                       "--class", "0-9", "--per-class", str(args.per_class), "--seed", str(args.seed), "--batch", "500",
                       "--dtype", args.dtype, *sampling.split(), "--out", os.path.join(tmp, "grid.png"),
                       "--save-image", npy, "--quiet"]
                subprocess.run(cmd, check=True)
                s = score(torch.from_numpy(np.load(npy)).float(), labels)
            r = dict(row=row, sampling=sampling, per_class=args.per_class, seed=args.seed, fid=s["fid"],
                     accuracy=s["accuracy"], command=" ".join(cmd[1:]))
            with open(args.out, "a") as f:
                f.write(json.dumps(r) + "\n")
            print(f"{r['fid']:7.2f} {100 * r['accuracy']:5.1f}%  {row:8s} {sampling}", flush=True)
            results.append(r)
    if args.table or not args.grid:
        table(results)


if __name__ == "__main__":
    main()
