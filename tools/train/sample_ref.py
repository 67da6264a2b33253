"""Python reference sampler (spec 5.1-5.3): VAR generation with CFG and top-k / top-p / temperature,
optionally collaborative decoding (drafter for scales 0..N-1, refiner for N..SN-1), then the
VQ-VAE decode. Loads the exported .pth files, infers the sizes from the tensor shapes like the
engine, and writes a sample grid PNG (one row per class) plus, with --save-npy, the tokens
and images as .npy for comparison with the C++ engine.

    /usr/bin/python3 tools/train/sample_ref.py --out /tmp/grid.png                       # VAR, drafter
    /usr/bin/python3 tools/train/sample_ref.py --refiner models/fashion_refiner.pth --draft-steps 3
    /usr/bin/python3 tools/train/sample_ref.py --top-k 1 --top-p 0 --classes 0,7 --per-class 1  # greedy

The random draws use torch.multinomial with a seeded torch.Generator, so only greedy (top-k 1)
runs are token-for-token comparable with another implementation.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MODELS_DIR  # noqa: E402
from var_model import VAR  # noqa: E402
from vqvae import VQVAE  # noqa: E402


# ----------------------------------------------------------------------------- loading by shapes
def load_vae(path):
    sd = torch.load(path, map_location="cpu")
    V, cvae = sd["quantize.embedding.weight"].shape
    ch = sd["decoder.conv_out.weight"].shape[1]
    levels = len({k.split(".")[2] for k in sd if k.startswith("decoder.up.") and k.endswith(".block.0.conv1.weight")})
    ch_mult = tuple(sd[f"decoder.up.{l}.block.0.conv1.weight"].shape[0] // ch for l in range(levels))
    nrb = len({k.split(".")[4] for k in sd if k.startswith("encoder.down.0.block.") and k.endswith("conv1.weight")})
    return sd, dict(ch=ch, ch_mult=ch_mult, num_res_blocks=nrb, cvae=cvae, vocab=V)


def build_vae(sd, cfg, patch_nums):
    vae = VQVAE(patch_nums=patch_nums, **cfg)
    sd = {k: v.float() for k, v in sd.items()}
    sd["quantize.ema_vocab_hit_SV"] = vae.quantize.ema_vocab_hit_SV  # training statistic: ignored
    vae.load_state_dict(sd)
    return vae.eval()


def load_var(path):
    sd = torch.load(path, map_location="cpu")
    C = sd["word_embed.weight"].shape[0]
    cvae = sd["word_embed.weight"].shape[1]
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.") and k.endswith("attn.mat_qkv.weight")})
    V = sd["head.weight"].shape[0]
    nc = sd["class_emb.weight"].shape[0] - 1
    lvl = sd["lvl_1L"].flatten().tolist()
    patch_nums = tuple(int(round(lvl.count(s) ** 0.5)) for s in range(max(lvl) + 1))
    m = VAR(depth, C, V, cvae, nc, patch_nums)
    m.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()})
    return m.eval()


# ----------------------------------------------------------------------------- sampling (5.1)
def sample_logits(logits_BlV, top_k, top_p, temperature, gen):
    """top-k (ties kept) -> top-p (ascending sort, remove cum prob <= 1-p, never the largest) ->
    temperature -> draw. Returns idx [B, l]."""
    B, l, V = logits_BlV.shape
    x = logits_BlV.float().clone()
    if top_k > 0:
        kth = x.topk(min(top_k, V), dim=-1).values[..., -1:]
        x.masked_fill_(x < kth, -torch.inf)
    if top_p > 0:
        srt, order = x.sort(dim=-1, descending=False)
        remove_sorted = srt.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
        remove_sorted[..., -1:] = False
        x.masked_fill_(remove_sorted.scatter(-1, order, remove_sorted), -torch.inf)
    if top_k == 1:
        return x.argmax(dim=-1)
    probs = (x / temperature).softmax(dim=-1).view(-1, V)
    return torch.multinomial(probs, 1, generator=gen).view(B, l)


def cfg_logits(logits_2BlV, B, cfg, si, SN):
    t = cfg * si / (SN - 1)
    return (1 + t) * logits_2BlV[:B] - t * logits_2BlV[B:]


# ----------------------------------------------------------------------------- generation (5.2 / 5.3)
@torch.no_grad()
def generate(vae, drafter, labels, cfg=1.5, top_k=900, top_p=0.96, temperature=1.0, seed=0,
             refiner=None, draft_steps=None, temps=None):
    """Returns (tokens [B, L] int64, image [B, 3, H, W] in [0, 1]). With a refiner and draft_steps N:
    the drafter runs scales 0..N-1, the refiner (its cache filled scale by scale from the same
    inputs, equal to the block-causal prefill) runs N..SN-1. temps: optional per-scale temperature."""
    gen = torch.Generator().manual_seed(seed)
    pns = drafter.patch_nums
    SN, P, B = len(pns), pns[-1], len(labels)
    Nd = SN if refiner is None else draft_steps
    label_2B = torch.cat([labels, torch.full_like(labels, drafter.num_classes)])
    quant = vae.quantize

    def start(m):
        m.reset_cache()
        cond = m.class_emb(label_2B)
        return cond, (cond + m.pos_start[0, 0]).unsqueeze(1) + m.lvl_pos()[:, :1]

    models = [drafter] if refiner is None else [drafter, refiner]
    conds, x0 = zip(*[start(m) for m in models])
    f_hat = torch.zeros(B, quant.cvae, P, P)
    tokens = []
    next_in = None  # [B, pn^2, Cvae] continuous input of the current scale (si >= 1)
    for si, pn in enumerate(pns):
        b, e = drafter.begin_ends[si]
        active = 0 if si < Nd else 1
        for mi, m in enumerate(models):
            if mi == 0 and si >= Nd:
                continue  # the drafter is done
            if si == 0:
                x = x0[mi]
            else:
                x = m.word_embed(next_in).repeat(2, 1, 1) + m.lvl_pos()[:, b:e]
            logits = m.step(x, conds[mi])  # every model sees every scale (refiner: prefill)
            if mi == active:
                lg = cfg_logits(logits, B, cfg, si, SN)
                temp = temps[si] if temps is not None else temperature
                idx = sample_logits(lg, top_k, top_p, temp, gen)
        tokens.append(idx)
        f_hat = quant.add_scale(f_hat, si, idx)
        if si < SN - 1:
            nxt = pns[si + 1]
            next_in = F.interpolate(f_hat, size=(nxt, nxt), mode="area").reshape(B, quant.cvae, -1).transpose(1, 2)
    for m in models:
        m.reset_cache()
    img = (vae.fhat_to_img(f_hat) + 1) / 2
    return torch.cat(tokens, dim=1), img


def save_grid(path, img_BCHW, ncol, scale=2):
    from PIL import Image
    B, C, H, W = img_BCHW.shape
    nrow = (B + ncol - 1) // ncol
    g = torch.zeros(C, nrow * (H + 2), ncol * (W + 2))
    for i in range(B):
        r, c = divmod(i, ncol)
        g[:, r * (H + 2) + 1:r * (H + 2) + 1 + H, c * (W + 2) + 1:c * (W + 2) + 1 + W] = img_BCHW[i]
    a = (g.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(a).resize((a.shape[1] * scale, a.shape[0] * scale), Image.NEAREST).save(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vae", default=os.path.join(MODELS_DIR, "fashion_vae.pth"))
    ap.add_argument("--drafter", default=os.path.join(MODELS_DIR, "fashion_drafter.pth"))
    ap.add_argument("--refiner", default=None)
    ap.add_argument("--draft-steps", type=int, default=None)
    ap.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    ap.add_argument("--per-class", type=int, default=8)
    ap.add_argument("--cfg", type=float, default=1.5)
    ap.add_argument("--top-k", type=int, default=900)
    ap.add_argument("--top-p", type=float, default=0.96)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="samples.png")
    ap.add_argument("--save-npy", default=None, help="prefix: writes <prefix>_tokens.npy, <prefix>_image.npy")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    drafter = load_var(args.drafter)
    vsd, vcfg = load_vae(args.vae)
    vae = build_vae(vsd, vcfg, drafter.patch_nums)
    refiner = load_var(args.refiner) if args.refiner else None
    if refiner is not None and not (1 <= (args.draft_steps or 0) <= len(drafter.patch_nums) - 1):
        sys.exit("--draft-steps N (1 <= N <= SN-1) is needed with --refiner")
    classes = [int(c) for c in args.classes.split(",")]
    labels = torch.tensor([c for c in classes for _ in range(args.per_class)])
    tokens, img = generate(vae, drafter, labels, args.cfg, args.top_k, args.top_p, args.temperature, args.seed,
                           refiner, args.draft_steps)
    save_grid(args.out, img, args.per_class)
    if args.save_npy:
        np.save(args.save_npy + "_tokens.npy", tokens.numpy())
        np.save(args.save_npy + "_image.npy", img.numpy())
    print(f"wrote {args.out}: {len(labels)} images, classes {classes}", flush=True)


if __name__ == "__main__":
    main()
