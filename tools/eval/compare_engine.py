"""Cross-check the C++ engine against the Python reference sampler on our Fashion models:
greedy (top-k 1), f32, same classes -> tokens must be identical, images within 1e-4.

    /usr/bin/python3 tools/eval/compare_engine.py --engine build/varcode            # VAR (drafter)
    /usr/bin/python3 tools/eval/compare_engine.py --engine build/varcode --draft-steps 3   # CoDe
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
from common import MODELS_DIR  # noqa: E402
from sample_ref import build_vae, generate, load_vae, load_var  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--vae", default=os.path.join(MODELS_DIR, "fashion_vae.pth"))
    ap.add_argument("--drafter", default=os.path.join(MODELS_DIR, "fashion_drafter.pth"))
    ap.add_argument("--refiner", default=os.path.join(MODELS_DIR, "fashion_refiner.pth"))
    ap.add_argument("--draft-steps", type=int, default=None, help="CoDe with this N; default: VAR with the drafter")
    ap.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    ap.add_argument("--cfg", type=float, default=1.5)
    args = ap.parse_args()
    torch.set_num_threads(2)
    classes = [int(c) for c in args.classes.split(",")]
    with tempfile.TemporaryDirectory() as td:
        cmd = [args.engine, "generate", "--vae", args.vae, "--dtype", "f32", "--threads", "2",
               "--class", args.classes, "--top-k", "1", "--top-p", "0", "--cfg", str(args.cfg), "--temperature", "1",
               "--seed", "0", "--out", f"{td}/g.png", "--save-tokens", f"{td}/t.npy", "--save-image", f"{td}/i.npy",
               "--quiet"]
        cmd += (["--drafter", args.drafter, "--refiner", args.refiner, "--draft-steps", str(args.draft_steps)]
                if args.draft_steps else ["--model", args.drafter])
        subprocess.run(cmd, check=True)
        et, ei = np.load(f"{td}/t.npy"), np.load(f"{td}/i.npy")
    d = load_var(args.drafter)
    vsd, vcfg = load_vae(args.vae)
    vae = build_vae(vsd, vcfg, d.patch_nums)
    r = load_var(args.refiner) if args.draft_steps else None
    pt, pi = generate(vae, d, torch.tensor(classes), args.cfg, 1, 0.0, 1.0, 0, r, args.draft_steps)
    same = (et == pt.numpy())
    err = float(np.abs(ei - pi.numpy()).max())
    print(f"tokens identical: {bool(same.all())} ({same.mean() * 100:.2f}% of positions), image max abs err {err:.2e}")
    if not same.all():
        b, l = np.argwhere(~same)[0]
        print(f"first mismatch: image {b}, position {l}")
    sys.exit(0 if same.all() and err < 1e-4 else 1)


if __name__ == "__main__":
    main()
