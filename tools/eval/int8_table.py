"""Issue #17's quality table: int8 against bf16 on the shipped Fashion-MNIST models. For each row
(the drafter alone; CoDe N=3, the built-in default) varcode generates the same images (classes,
seed, sampling) with --dtype bf16 and --dtype int8; both sets are scored by tools/eval/score.py
(class accuracy, FID on the classifier's features vs the 10k test images), and the tokens are
compared position by position: the share that int8 changes for the same seed (once one token
differs, the later scales see another image, so this counts the divergence, not only the
rounding). Rows are resumable (each row's score is kept in --out-dir).

    /usr/bin/python3 tools/eval/int8_table.py --varcode build/varcode --out-dir /tmp/int8q [--per-class 1000]
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
    ap.add_argument("--rows", default="drafter,code3", help="which rows: drafter (alone), code3 (CoDe N=3)")
    ap.add_argument("--sampling", default="--cfg 1.5 --top-k 600 --top-p 0.96 --temperature 1",
                    help="as tools/eval/quality_table.py, so the rows compare with its table")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    m = lambda f: os.path.join(MODELS_DIR, f)  # noqa: E731
    vae = ["--vae", m("fashion_vae.pth")]
    rows = [("drafter alone", ["--model", m("fashion_drafter.pth")]),
            ("CoDe N=3", ["--drafter", m("fashion_drafter.pth"), "--refiner", m("fashion_refiner.pth"),
                          "--draft-steps", "3"])]
    keep = {"drafter": "drafter alone", "code3": "CoDe N=3"}
    rows = [r for r in rows if r[0] in {keep[k] for k in args.rows.split(",")}]
    classes = ",".join(str(c) for c in range(10))
    labels = np.repeat(np.arange(10), args.per_class)
    table = []
    for name, flags in rows:
        tag = name.replace(" ", "_").replace("=", "")
        js = os.path.join(args.out_dir, tag + ".json")
        if os.path.exists(js):
            table.append(json.load(open(js)))
            continue
        row = dict(row=name, n=len(labels))
        tokens = {}
        for dtype in ("bf16", "int8"):
            npy = os.path.join(args.out_dir, f"{tag}_{dtype}.npy")
            tok = os.path.join(args.out_dir, f"{tag}_{dtype}_tokens.npy")
            cmd = [args.varcode, "generate", *vae, *flags, "--class", classes, "--per-class", str(args.per_class),
                   "--seed", str(args.seed), "--batch", str(args.batch), "--dtype", dtype, *args.sampling.split(),
                   "--out", os.path.join(args.out_dir, f"{tag}_{dtype}.png"), "--save-image", npy,
                   "--save-tokens", tok, "--quiet"]
            t0 = time.time()
            subprocess.run(cmd, check=True)
            wall = time.time() - t0
            r = score(torch.from_numpy(np.load(npy)).float(), labels)
            row[dtype] = dict(accuracy=r["accuracy"], fid=r["fid"], s_per_image_batched=wall / len(labels),
                              command=" ".join(cmd))
            tokens[dtype] = np.load(tok)
            os.remove(npy)  # 120 MB per set; the score is kept
        changed = tokens["int8"] != tokens["bf16"]  # [N, L]
        row["tokens_changed"] = float(changed.mean())
        row["images_with_any_change"] = float(changed.any(axis=1).mean())
        # The first scale where an image's tokens differ, as a histogram over scales (tiny: 6).
        pn = [1, 2, 3, 4, 6, 8]
        ends = np.cumsum([p * p for p in pn])
        first = np.where(changed.any(axis=1), changed.argmax(axis=1), -1)
        row["first_changed_scale"] = {int(s): int(((first >= 0) & (np.searchsorted(ends, first, side="right") == s)).sum())
                                      for s in range(len(pn))}
        json.dump(row, open(js, "w"), indent=1)
        print(json.dumps(row), flush=True)
        table.append(row)
    print("| row | images | bf16 accuracy / FID | int8 accuracy / FID | tokens changed (same seed) | images with a change |")
    print("|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['row']} | {r['n']} | {100 * r['bf16']['accuracy']:.1f}% / {r['bf16']['fid']:.2f} | "
              f"{100 * r['int8']['accuracy']:.1f}% / {r['int8']['fid']:.2f} | {100 * r['tokens_changed']:.1f}% | "
              f"{100 * r['images_with_any_change']:.1f}% |")


if __name__ == "__main__":
    main()
