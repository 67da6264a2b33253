"""Stage 4/5: train a VAR transformer (drafter or refiner) with teacher forcing on the cached tokens.

Block-causal mask, cross-entropy on every position, 10% class dropout to the unconditional class
(for CFG). Teacher-forcing inputs are built on the fly from the tokens with the frozen VQ-VAE
quantizer (models/fashion_vae.pth). Resumable: $WORK_DIR/<role>/ckpt.pt every --ckpt-every s;
losses in $WORK_DIR/<role>/log.csv (train) and val.csv (test split). At the end (or with
--export-only, from the latest checkpoint) it writes models/fashion_<role>.pth.

    nice -n 19 /usr/bin/python3 tools/train/train_var.py --role drafter
    nice -n 19 /usr/bin/python3 tools/train/train_var.py --role refiner
"""
import argparse
import json
import math
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
from var_model import VAR  # noqa: E402

ROLES = {
    # depth, width (= 64 * heads), steps (those of the shipped files), batch, lr. The drafter
    # costs ~12x the refiner per token, the same order as VAR-d30 vs VAR-d16 (~6x).
    "drafter": dict(depth=6, width=256, steps=7060, bs=256, lr=1e-3),
    "refiner": dict(depth=2, width=128, steps=4589, bs=256, lr=2e-3),
}


def build_var(role, vocab, cvae):
    r = ROLES[role]
    return VAR(r["depth"], r["width"], vocab, cvae, NUM_CLASSES, PATCH_NUMS, cond_drop_rate=0.1)


def split_scales(tok_BL):
    out, b = [], 0
    for pn in PATCH_NUMS:
        out.append(tok_BL[:, b:b + pn * pn])
        b += pn * pn
    return out


@torch.no_grad()
def validate(model, quant, toks, labels, n=512, bs=128):
    model.eval()
    n = min(n, len(toks))
    ends = np.cumsum([pn * pn for pn in PATCH_NUMS])
    tot = torch.zeros(len(PATCH_NUMS))
    acc = 0.0
    for i in range(0, n, bs):
        t = toks[i:i + bs].long()
        x = quant.tokens_to_var_input(split_scales(t))
        logits = model(labels[i:i + bs], x)
        ce = F.cross_entropy(logits.transpose(1, 2), t, reduction="none")  # [B, L]
        b = 0
        for si, e in enumerate(ends):
            tot[si] += ce[:, b:e].mean().item() * len(t)
            b = e
        acc += (logits.argmax(-1) == t).float().mean().item() * len(t)
    model.train()
    per_scale = (tot / n).tolist()
    L = ends[-1]
    w = np.diff(np.concatenate([[0], ends])) / L
    return float(np.dot(w, per_scale)), per_scale, acc / n


def export(model, role):
    path = os.path.join(MODELS_DIR, f"fashion_{role}.pth")
    export_state_dict(model.state_dict(), path)
    print("exported", path, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=sorted(ROLES), required=True)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--time-budget", type=float, default=None,
                    help="seconds: after 50 timed steps, cap the run's step count (and its cosine schedule) so "
                         "that training ends within the budget; the step count used is logged")
    ap.add_argument("--bs", type=int, default=None, help="batch size (default: the role's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=float, default=300.0)
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export-only", action="store_true", help="export models/fashion_<role>.pth from the checkpoint")
    args = ap.parse_args()
    cfg = dict(ROLES[args.role])
    if args.steps:
        cfg["steps"] = args.steps
    if args.bs:
        cfg["bs"] = args.bs
    setup_torch(args.threads, args.seed)
    out = os.path.join(WORK_DIR, args.role)
    os.makedirs(out, exist_ok=True)
    ck_path = os.path.join(out, "ckpt.pt")

    dev = pick_device()
    vae = load_vae().to(dev)
    quant = vae.quantize
    V, Cvae = quant.vocab, quant.cvae
    model = build_var(args.role, V, Cvae).to(dev)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if p.ndim == 2 and "emb" not in n and "pos_" not in n else no_decay).append(p)
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=0.05), dict(params=no_decay, weight_decay=0.0)],
                            lr=cfg["lr"], betas=(0.9, 0.95))
    step, timer = 0, Timer()
    ck = load_ckpt(ck_path)
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, timer = ck["step"], Timer(ck["wall"], ck["cpu"])
        cfg["steps"] = ck["cfg"]["steps"]  # a resumed run keeps its schedule
        print(f"resumed at step {step}", flush=True)
    if args.export_only:
        export(model, args.role)
        return
    print(f"{args.role}: {cfg}, params {sum(p.numel() for p in model.parameters())}", flush=True)

    data = torch.load(os.path.join(WORK_DIR, "tokens", "tokens.pt"))
    tr, ytr, te, yte = (data[k].to(dev) for k in ("train", "train_labels", "test", "test_labels"))
    print(f"device {dev}", flush=True)
    log = CsvLog(os.path.join(out, "log.csv"), ["step", "loss", "loss_last", "acc", "lr", "wall_s", "cpu_s"])
    vlog = CsvLog(os.path.join(out, "val.csv"), ["step", "val_loss", "val_acc"] + [f"s{i}" for i in range(len(PATCH_NUMS))])
    rng = np.random.default_rng(args.seed + 7919 * step)
    torch.manual_seed(args.seed + step)
    last_ck = time.time()
    zero = torch.zeros((), device=dev)
    acc = dict(loss=zero, last=zero, acc=zero, n=0)  # summed on the device: one sync per log line
    last_b = sum(pn * pn for pn in PATCH_NUMS[:-1])
    model.train()
    # steps 20..70 are timed (after the warm-up that the first steps pay on a GPU)
    budget_from = (20, None) if args.time_budget and step == 0 else None
    started = time.time()
    while step < cfg["steps"]:
        if budget_from and budget_from[1] is None and step == budget_from[0]:
            zero.item()
            budget_from = (step + 50, time.time())
        elif budget_from and budget_from[1] is not None and step == budget_from[0]:
            zero.item()
            per_step = (time.time() - budget_from[1]) / 50
            left = args.time_budget - (time.time() - started)
            cfg["steps"] = min(cfg["steps"], step + int(left / per_step))
            print(f"time budget {args.time_budget:.0f} s at {per_step * 1e3:.1f} ms/step: {cfg['steps']} steps",
                  flush=True)
            budget_from = None
        ids = torch.from_numpy(rng.integers(0, len(tr), cfg["bs"])).to(dev)
        t = tr[ids].long()
        x = quant.tokens_to_var_input(split_scales(t))
        warm = min(1.0, (step + 1) / 100)
        lr = cfg["lr"] * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / cfg["steps"])))
        for g in opt.param_groups:
            g["lr"] = lr
        logits = model(ytr[ids], x)
        ce = F.cross_entropy(logits.transpose(1, 2), t, reduction="none")  # [B, L]
        loss = ce.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        step += 1
        with torch.no_grad():
            acc["loss"] = acc["loss"] + loss.detach()
            acc["last"] = acc["last"] + ce[:, last_b:].mean()
            acc["acc"] = acc["acc"] + (logits.argmax(-1) == t).float().mean()
        acc["n"] += 1
        if step % 25 == 0 or step == cfg["steps"]:
            n = acc["n"]
            log.log(step=step, loss=acc["loss"].item() / n, loss_last=acc["last"].item() / n,
                    acc=acc["acc"].item() / n, lr=lr, wall_s=round(timer.wall()), cpu_s=round(timer.cpu()))
            acc = dict(loss=zero, last=zero, acc=zero, n=0)
        if step % args.val_every == 0 or step == cfg["steps"]:
            vl, per, va = validate(model, quant, te, yte)
            vlog.log(step=step, val_loss=vl, val_acc=va, **{f"s{i}": round(v, 4) for i, v in enumerate(per)})
        if time.time() - last_ck > args.ckpt_every or step == cfg["steps"]:
            save_ckpt(ck_path, dict(model=model.state_dict(), opt=opt.state_dict(), step=step,
                                    wall=timer.wall(), cpu=timer.cpu(), cfg=cfg))
            last_ck = time.time()

    vl, per, va = validate(model, quant, te, yte, n=2000)
    res = dict(step=step, val_loss=vl, val_loss_per_scale=per, val_acc=va, wall_s=timer.wall(), cpu_s=timer.cpu(),
               cfg=cfg, device=str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
               params=sum(p.numel() for p in model.parameters()))
    with open(os.path.join(out, "final.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res), flush=True)
    export(model, args.role)
    open(os.path.join(out, "DONE"), "w").write(str(step))


if __name__ == "__main__":
    main()
