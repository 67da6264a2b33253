"""The model card's speed columns (models/README.md, issue #19): ms/image of every row (drafter
alone, refiner alone, CoDe N = 1..5 with the shipped pair, and CoDe N = 3..5 with --tuned REFINER),
in f32 and bf16, at batch 1 (--runs 30) and 32 (--runs 5), from `varcode bench`. Every config runs
once per round, rounds repeated (--rounds), so slow spells of a shared machine spread over all
rows; one JSON line per row with every round and the median.

    /usr/bin/python3 tools/eval/speed_table.py --varcode build/varcode [--tuned DIR/fashion_refiner_3.pth] > speed.jsonl
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from common import MODELS_DIR  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--varcode", default="build/varcode")
    ap.add_argument("--tuned", default=None, help="a fine-tuned refiner: rows 'CoDe N=3..5 fine-tuned'")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    m = lambda f: os.path.join(MODELS_DIR, f)  # noqa: E731
    pair = lambda ref, n: ["--drafter", m("fashion_drafter.pth"), "--refiner", ref, "--draft-steps", str(n)]  # noqa: E731
    cfgs = [("drafter alone", ["--model", m("fashion_drafter.pth")]), ("refiner alone", ["--model", m("fashion_refiner.pth")])]
    cfgs += [(f"CoDe N={n}", pair(m("fashion_refiner.pth"), n)) for n in range(1, 6)]
    if args.tuned:
        cfgs += [(f"CoDe N={n} fine-tuned", pair(args.tuned, n)) for n in (3, 4, 5)]
    res = {}
    for dtype in ("f32", "bf16"):
        for batch, runs in ((1, 30), (32, 5)):
            for _ in range(args.rounds):
                for name, flags in cfgs:
                    out = subprocess.run([args.varcode, "bench", *flags, "--vae", m("fashion_vae.pth"), "--dtype", dtype,
                                          "--batch", str(batch), "--runs", str(runs), "--json"],
                                         capture_output=True, text=True, check=True).stdout
                    res.setdefault((name, dtype, batch), []).append(1000 * json.loads(out)["s_per_image"])
    for (name, dtype, batch), ms in sorted(res.items()):
        print(json.dumps(dict(row=name, dtype=dtype, batch=batch, ms=[round(x, 2) for x in ms],
                              median=round(statistics.median(ms), 2))), flush=True)


if __name__ == "__main__":
    main()
