"""Issue #8's quality table: drafter alone, refiner alone and CoDe N = 1..SN-1, each row 10,000
images made by varcode (1000 per class, the same seed and sampling settings for every row),
scored by tools/eval/score.py (class accuracy, FID on the classifier's features vs the 10k test
images). Rows are resumable (each row's images and score are kept in --out-dir).

    /usr/bin/python3 tools/eval/quality_table.py --varcode build/varcode --out-dir /tmp/quality
    # the fine-tuned pairs only (issue #19), from a folder of exports:
    /usr/bin/python3 tools/eval/quality_table.py --out-dir /tmp/quality --tuned-dir out --only "CoDe N=3 fine-tuned"

Seconds per image here are the batched generation wall time / images on whatever else the machine
runs; the closing note's latency figures come from `varcode bench`.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "train"))
from common import MODELS_DIR  # noqa: E402
from score import score  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--varcode", default="build/varcode")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--per-class", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--dtype", default="f32")
    ap.add_argument("--sampling", default="--cfg 1.5 --top-k 600 --top-p 0.96 --temperature 1",
                    help="the same for every row, so that rows differ only in which model draws which scale")
    ap.add_argument("--max-draft-steps", type=int, default=5)
    ap.add_argument("--tuned-dir", default=MODELS_DIR,
                    help="rows 'CoDe N=k fine-tuned' for every k with <dir>/fashion_refiner_k.pth (issue #19; with "
                         "<dir>/fashion_drafter_k.pth when there is one, else the base drafter)")
    ap.add_argument("--only", default=None, help="comma-separated row names to run (default: all)")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    m = lambda f: os.path.join(MODELS_DIR, f)  # noqa: E731
    vae = ["--vae", m("fashion_vae.pth")]
    rows = [("drafter alone", ["--model", m("fashion_drafter.pth")]),
            ("refiner alone", ["--model", m("fashion_refiner.pth")])]
    rows += [(f"CoDe N={n}", ["--drafter", m("fashion_drafter.pth"), "--refiner", m("fashion_refiner.pth"),
                              "--draft-steps", str(n)]) for n in range(1, args.max_draft_steps + 1)]
    for n in range(1, args.max_draft_steps + 1):
        ref = os.path.join(args.tuned_dir, f"fashion_refiner_{n}.pth")
        if os.path.exists(ref):
            dra = os.path.join(args.tuned_dir, f"fashion_drafter_{n}.pth")
            dra = dra if os.path.exists(dra) else m("fashion_drafter.pth")
            rows.append((f"CoDe N={n} fine-tuned", ["--drafter", dra, "--refiner", ref, "--draft-steps", str(n)]))
    if args.only:
        keep = [r.strip() for r in args.only.split(",")]
        rows = [r for r in rows if r[0] in keep]
    classes = ",".join(str(c) for c in range(10))
    labels = np.repeat(np.arange(10), args.per_class)
    table = []
    for name, flags in rows:
        tag = name.replace(" ", "_").replace("=", "").replace("-", "")
        npy, js = os.path.join(args.out_dir, tag + ".npy"), os.path.join(args.out_dir, tag + ".json")
        if os.path.exists(js):
            table.append(json.load(open(js)))
            continue
        cmd = [args.varcode, "generate", *vae, *flags, "--class", classes, "--per-class", str(args.per_class),
               "--seed", str(args.seed), "--batch", str(args.batch), "--dtype", args.dtype, *args.sampling.split(),
               "--out", os.path.join(args.out_dir, tag + ".png"), "--save-image", npy, "--quiet"]
        t0 = time.time()
        subprocess.run(cmd, check=True)
        wall = time.time() - t0
        r = score(torch.from_numpy(np.load(npy)).float(), labels)
        row = dict(row=name, n=int(r["n"]), accuracy=r["accuracy"], fid=r["fid"], s_per_image_batched=wall / len(labels),
                   command=" ".join(cmd))
        json.dump(row, open(js, "w"), indent=1)
        os.remove(npy)  # 120 MB per row; the score is kept
        print(json.dumps(row), flush=True)
        table.append(row)
    print("| row | images | class accuracy | FID (classifier features) | s/image (batched) |")
    print("|---|---|---|---|---|")
    for r in table:
        print(f"| {r['row']} | {r['n']} | {100 * r['accuracy']:.1f}% | {r['fid']:.2f} | {r['s_per_image_batched']:.4f} |")


if __name__ == "__main__":
    main()
