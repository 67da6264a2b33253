"""Stage 1: train the multi-scale VQ-VAE on Fashion-MNIST (32x32 RGB in [-1, 1]).

Resumable: state in $WORK_DIR/vae/ckpt.pt (model, optimizer, step, timers), rewritten every
--ckpt-every seconds; losses in $WORK_DIR/vae/log.csv. When --steps is reached it writes an
evaluation (recon error, codebook usage per scale) to $WORK_DIR/vae/final.json, a reconstruction
grid PNG, and exports models/fashion_vae.pth (official key layout).

    nice -n 19 /usr/bin/python3 tools/train/train_vae.py            # start or resume
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
from common import (MODELS_DIR, PATCH_NUMS, WORK_DIR, CsvLog, Timer, export_state_dict, load_ckpt,  # noqa: E402
                    load_fashion_u8, save_ckpt, setup_torch, to_model_images)
from vqvae import VQVAE  # noqa: E402

VAE_CFG = dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, cvae=32, vocab=1024, patch_nums=PATCH_NUMS, beta=0.25)


def build_vae():
    return VQVAE(**VAE_CFG)


def grad_loss(a, b):
    """L1 between horizontal/vertical finite differences: a cheap edge-sharpness term (no LPIPS)."""
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    return (dx(a) - dx(b)).abs().mean() + (dy(a) - dy(b)).abs().mean()


@torch.no_grad()
def evaluate(vae, x_u8, n=2000, bs=200):
    vae.eval()
    V, SN = VAE_CFG["vocab"], len(PATCH_NUMS)
    hits = torch.zeros(SN, V, dtype=torch.long)
    l1 = mse = 0.0
    for i in range(0, n, bs):
        x = to_model_images(x_u8[i:i + bs])
        idx, f_hat = vae.img_to_idx(x)
        rec = vae.fhat_to_img(f_hat)
        l1 += (rec - x).abs().mean().item() * len(x)
        mse += (rec - x).pow(2).mean().item() * len(x)
        for si, t in enumerate(idx):
            hits[si] += torch.bincount(t.flatten(), minlength=V)
    used_all = int((hits.sum(0) > 0).sum())
    psnr = 10 * math.log10(4.0 / (mse / n))  # images span [-1, 1] -> peak-to-peak 2
    vae.train()
    return dict(l1=l1 / n, mse=mse / n, psnr_db=psnr, codes_used=used_all,
                codes_used_per_scale=[int((h > 0).sum()) for h in hits], hits=hits)


def save_grid(path, rows):
    """rows: list of [N, 3, 32, 32] tensors in [-1, 1] -> PNG grid."""
    from PIL import Image
    g = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)  # [3, H, W]
    a = ((g.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(a).resize((a.shape[1] * 2, a.shape[0] * 2), Image.NEAREST).save(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=float, default=300.0, help="seconds")
    ap.add_argument("--restart-every", type=int, default=100, help="dead-code restart period (steps)")
    ap.add_argument("--restart-until", type=float, default=0.7, help="fraction of steps with restarts")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    setup_torch(args.threads, args.seed)
    out = os.path.join(WORK_DIR, "vae")
    os.makedirs(out, exist_ok=True)
    ck_path = os.path.join(out, "ckpt.pt")

    x_tr, _ = load_fashion_u8("train")
    x_te, _ = load_fashion_u8("test")
    vae = build_vae()
    opt = torch.optim.Adam(vae.parameters(), lr=args.lr, betas=(0.9, 0.99))
    step, timer = 0, Timer()
    ck = load_ckpt(ck_path)
    if ck is not None:
        vae.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, timer = ck["step"], Timer(ck["wall"], ck["cpu"])
        print(f"resumed at step {step}", flush=True)
    log = CsvLog(os.path.join(out, "log.csv"),
                 ["step", "loss", "l1", "mse", "grad", "vq", "codes_used_window", "restarted", "lr", "wall_s", "cpu_s"])
    print(f"VAE {VAE_CFG}, params {sum(p.numel() for p in vae.parameters())}", flush=True)

    V = VAE_CFG["vocab"]
    window_hits = torch.zeros(V, dtype=torch.long)
    rng = np.random.default_rng(args.seed + step)
    torch.manual_seed(args.seed + step)
    last_ck = time.time()
    acc = dict(loss=0.0, l1=0.0, mse=0.0, grad=0.0, vq=0.0, n=0)
    restarted = 0
    vae.train()
    while step < args.steps:
        ids = rng.integers(0, len(x_tr), args.bs)
        x = to_model_images(x_tr[ids])
        flip = torch.from_numpy(rng.random(args.bs) < 0.5)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        warm = min(1.0, (step + 1) / 100)
        lr = args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        rec, vq, idx, z = vae(x)
        l1 = (rec - x).abs().mean()
        mse = (rec - x).pow(2).mean()
        gl = grad_loss(rec, x)
        loss = l1 + mse + 0.5 * gl + vq
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 2.0)
        opt.step()
        step += 1
        for t in idx:
            window_hits += torch.bincount(t.flatten(), minlength=V)
        for k, v in (("loss", loss), ("l1", l1), ("mse", mse), ("grad", gl), ("vq", vq)):
            acc[k] += v.item()
        acc["n"] += 1
        # dead-code restart: codes unused over the window take a random residual vector of this batch
        if step % args.restart_every == 0 and step < args.restart_until * args.steps:
            dead = (window_hits == 0).nonzero().flatten()
            if len(dead):
                pool = torch.cat([t.detach() for t in z], dim=0)
                pick = torch.from_numpy(rng.integers(0, len(pool), len(dead)))
                with torch.no_grad():
                    vae.quantize.embedding.weight[dead] = pool[pick] + 1e-3 * torch.randn(len(dead), pool.shape[1])
                # reset Adam moments of the restarted rows
                st = opt.state.get(vae.quantize.embedding.weight)
                if st:
                    st["exp_avg"][dead] = 0
                    st["exp_avg_sq"][dead] = 0
            restarted = len(dead)
        if step % 25 == 0 or step == args.steps:
            n = acc["n"]
            log.log(step=step, loss=acc["loss"] / n, l1=acc["l1"] / n, mse=acc["mse"] / n, grad=acc["grad"] / n,
                    vq=acc["vq"] / n, codes_used_window=int((window_hits > 0).sum()), restarted=restarted,
                    lr=lr, wall_s=round(timer.wall()), cpu_s=round(timer.cpu()))
            acc = dict(loss=0.0, l1=0.0, mse=0.0, grad=0.0, vq=0.0, n=0)
        if step % args.restart_every == 0:
            window_hits.zero_()
        if time.time() - last_ck > args.ckpt_every or step == args.steps:
            save_ckpt(ck_path, dict(model=vae.state_dict(), opt=opt.state_dict(), step=step,
                                    wall=timer.wall(), cpu=timer.cpu(), cfg=VAE_CFG))
            last_ck = time.time()

    # final evaluation + export
    ev = evaluate(vae, x_te, n=2000)
    hits = ev.pop("hits")
    ev.update(step=step, wall_s=timer.wall(), cpu_s=timer.cpu(), cfg={k: list(v) if isinstance(v, tuple) else v
                                                                      for k, v in VAE_CFG.items()})
    with open(os.path.join(out, "final.json"), "w") as f:
        json.dump(ev, f, indent=1)
    print(json.dumps(ev), flush=True)
    with torch.no_grad():
        x = to_model_images(x_te[:16])
        _, f_hat = vae.img_to_idx(x)
        save_grid(os.path.join(out, "recon.png"), [x, vae.fhat_to_img(f_hat)])
    vae.quantize.ema_vocab_hit_SV.copy_(hits.float())  # usage statistic on 2000 test images (ignored by the engine)
    sd = vae.state_dict()
    export_state_dict(sd, os.path.join(MODELS_DIR, "fashion_vae.pth"))
    open(os.path.join(out, "DONE"), "w").write(str(step))
    print("exported", os.path.join(MODELS_DIR, "fashion_vae.pth"), flush=True)


if __name__ == "__main__":
    main()
