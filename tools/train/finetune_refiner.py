"""CoDe's specialised refiner (the authors' recipe, shortened): starting from the trained refiner,
train it only on the scales it will draw at hand-over N (positions from scale N on), with a mix
of the ground-truth cross-entropy and a distillation loss towards the drafter's predictions
(KL(drafter || refiner), the drafter frozen). Teacher forcing on the cached tokens, class dropout
10% as in training. Resumable; losses in $WORK_DIR/refiner_n<N>/; exports
models/fashion_refiner_n<N>.pth (the official files' naming: refiner_N.pth).

    nice -n 10 /usr/bin/python3 tools/train/finetune_refiner.py --draft-steps 3 --steps 600
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (MODELS_DIR, NUM_CLASSES, PATCH_NUMS, WORK_DIR, CsvLog, Timer, export_state_dict,  # noqa: E402
                    load_ckpt, pick_device, save_ckpt, setup_torch)
from tokenize_data import load_vae  # noqa: E402
from train_var import build_var, split_scales  # noqa: E402


def load_role(role, path, quant, dev):
    m = build_var(role, quant.vocab, quant.cvae)
    m.load_state_dict(torch.load(path, map_location="cpu"))
    return m.to(dev)


def late_losses(refiner, drafter, quant, toks, labels, begin, alpha, train):
    t = toks.long()
    x = quant.tokens_to_var_input(split_scales(t))
    with torch.no_grad():
        teacher = F.log_softmax(drafter(labels, x)[:, begin:], dim=-1)  # [B, L - begin, V]
    logits = refiner(labels, x)[:, begin:]  # [B, L - begin, V]
    ce = F.cross_entropy(logits.transpose(1, 2), t[:, begin:])
    kl = F.kl_div(F.log_softmax(logits, dim=-1), teacher, log_target=True, reduction="none").sum(-1).mean()
    return (1 - alpha) * ce + alpha * kl, ce, kl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--draft-steps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of the distillation term")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    setup_torch(args.threads, args.seed)
    dev = pick_device()
    N = args.draft_steps
    out = os.path.join(WORK_DIR, f"refiner_n{N}")
    os.makedirs(out, exist_ok=True)
    ck_path = os.path.join(out, "ckpt.pt")
    quant = load_vae().to(dev).quantize
    drafter = load_role("drafter", os.path.join(MODELS_DIR, "fashion_drafter.pth"), quant, dev).eval()
    refiner = load_role("refiner", os.path.join(MODELS_DIR, "fashion_refiner.pth"), quant, dev)
    refiner.cond_drop_rate = 0.0  # dropped by hand below, the same labels for teacher and student
    opt = torch.optim.AdamW(refiner.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    step, timer = 0, Timer()
    ck = load_ckpt(ck_path)
    if ck is not None:
        refiner.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, timer = ck["step"], Timer(ck["wall"], ck["cpu"])
    data = torch.load(os.path.join(WORK_DIR, "tokens", "tokens.pt"))
    tr, ytr, te, yte = (data[k].to(dev) for k in ("train", "train_labels", "test", "test_labels"))
    begin = sum(pn * pn for pn in PATCH_NUMS[:N])
    log = CsvLog(os.path.join(out, "log.csv"), ["step", "loss", "ce_late", "kl_late", "val_ce_late", "wall_s", "cpu_s"])

    def val_ce(n=1024):
        n = min(n, len(te))
        refiner.eval()
        tot = 0.0
        with torch.no_grad():
            for i in range(0, n, 256):
                j = min(n, i + 256)
                _, ce, _ = late_losses(refiner, drafter, quant, te[i:j], yte[i:j], begin, args.alpha, False)
                tot += ce.item() * (j - i)
        refiner.train()
        return tot / n

    if step == 0:
        log.log(step=0, val_ce_late=val_ce())
    rng = np.random.default_rng(args.seed + 7919 * step)
    last_ck = time.time()
    while step < args.steps:
        ids = torch.from_numpy(rng.integers(0, len(tr), args.bs)).to(dev)
        labels = ytr[ids].clone()
        labels[torch.from_numpy(rng.random(args.bs) < 0.1).to(dev)] = NUM_CLASSES
        loss, ce, kl = late_losses(refiner, drafter, quant, tr[ids], labels, begin, args.alpha, True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(refiner.parameters(), 2.0)
        opt.step()
        step += 1
        if step % 25 == 0 or step == args.steps:
            row = dict(step=step, loss=loss.item(), ce_late=ce.item(), kl_late=kl.item(), wall_s=round(timer.wall()),
                       cpu_s=round(timer.cpu()))
            if step % 200 == 0 or step == args.steps:
                row["val_ce_late"] = val_ce()
            log.log(**row)
        if time.time() - last_ck > 120 or step == args.steps:
            save_ckpt(ck_path, dict(model=refiner.state_dict(), opt=opt.state_dict(), step=step, wall=timer.wall(),
                                    cpu=timer.cpu()))
            last_ck = time.time()
    path = os.path.join(MODELS_DIR, f"fashion_refiner_n{N}.pth")
    export_state_dict(refiner.state_dict(), path)
    res = dict(step=step, draft_steps=N, val_ce_late=val_ce(), alpha=args.alpha, lr=args.lr, bs=args.bs,
               wall_s=timer.wall(), cpu_s=timer.cpu())
    json.dump(res, open(os.path.join(out, "final.json"), "w"), indent=1)
    print(json.dumps(res), "exported", path, flush=True)


if __name__ == "__main__":
    main()
