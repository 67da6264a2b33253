"""Stage 2: tokenize Fashion-MNIST once with the trained VQ-VAE (models/fashion_vae.pth).

Writes $WORK_DIR/tokens/tokens.pt: train tokens for the 60k images and their horizontal flips
(int16 [120000, L]), labels, and test tokens (int16 [10000, L]) for validation losses.

    nice -n 19 /usr/bin/python3 tools/train/tokenize_data.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MODELS_DIR, WORK_DIR, load_fashion_u8, pick_device, save_ckpt, setup_torch, to_model_images  # noqa: E402
from train_vae import build_vae  # noqa: E402


def load_vae(path=os.path.join(MODELS_DIR, "fashion_vae.pth")):
    vae = build_vae()
    vae.load_state_dict(torch.load(path, map_location="cpu"))
    return vae.eval()


@torch.no_grad()
def tokenize(vae, x_u8, flip=False, bs=500):
    out = []
    dev = next(vae.parameters()).device
    for i in range(0, len(x_u8), bs):
        x = to_model_images(x_u8[i:i + bs]).to(dev)
        if flip:
            x = x.flip(3)
        idx, _ = vae.img_to_idx(x)
        out.append(torch.cat(idx, dim=1).to(torch.int16).cpu())
        if (i // bs) % 20 == 0:
            print(f"  {'flip ' if flip else ''}{i}/{len(x_u8)}", flush=True)
    return torch.cat(out)


def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None, help="tokenize only the first N images (smoke tests)")
    args = ap.parse_args()
    setup_torch(2)
    out = os.path.join(WORK_DIR, "tokens")
    os.makedirs(out, exist_ok=True)
    vae = load_vae().to(pick_device())
    x_tr, y_tr = load_fashion_u8("train")
    x_te, y_te = load_fashion_u8("test")
    if args.limit:
        x_tr, y_tr, x_te, y_te = x_tr[:args.limit], y_tr[:args.limit], x_te[:args.limit], y_te[:args.limit]
    te = tokenize(vae, x_te)
    tr = torch.cat([tokenize(vae, x_tr), tokenize(vae, x_tr, flip=True)])
    ytr = torch.from_numpy(y_tr)
    save_ckpt(os.path.join(out, "tokens.pt"), dict(train=tr, train_labels=torch.cat([ytr, ytr]), test=te,
                                                   test_labels=torch.from_numpy(y_te)))
    V = vae.quantize.vocab
    print("codes used: train", int((torch.bincount(tr.long().flatten(), minlength=V) > 0).sum()),
          "test", int((torch.bincount(te.long().flatten(), minlength=V) > 0).sum()), flush=True)
    open(os.path.join(out, "DONE"), "w").write("ok")


if __name__ == "__main__":
    main()
