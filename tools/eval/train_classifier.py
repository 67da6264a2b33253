"""Train the evaluation classifier (tools/eval/classifier.py) on the Fashion-MNIST training split,
report its test accuracy, and export models/fashion_classifier.safetensors (weights, FID reference
statistics of the 10k test images, a parity probe). Resumable per epoch ($WORK_DIR/classifier/).

    nice -n 19 /usr/bin/python3 tools/eval/train_classifier.py
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "train"))
from classifier import FashionCNN, feature_stats, save_safetensors  # noqa: E402
from common import (MODELS_DIR, WORK_DIR, CsvLog, Timer, load_ckpt, load_fashion_u8, pick_device, save_ckpt,  # noqa: E402
                    setup_torch)


def to01(x_u8):
    return torch.from_numpy(np.array(x_u8, dtype=np.uint8)).float().div_(255.0).unsqueeze(1)


@torch.no_grad()
def predict(model, x_u8, bs=1000):
    model.eval()
    dev = next(model.parameters()).device
    feats, logits = [], []
    for i in range(0, len(x_u8), bs):
        f = model.features(to01(x_u8[i:i + bs]).to(dev))
        feats.append(f.cpu())
        logits.append(model.fc2(f).cpu())
    model.train()
    return torch.cat(feats), torch.cat(logits)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--bs", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="train on the first N images only (smoke tests)")
    args = ap.parse_args()
    setup_torch(args.threads, args.seed)
    out = os.path.join(WORK_DIR, "classifier")
    os.makedirs(out, exist_ok=True)
    ck_path = os.path.join(out, "ckpt.pt")
    x_tr, y_tr = load_fashion_u8("train")
    x_te, y_te = load_fashion_u8("test")
    if args.limit:
        x_tr, y_tr = x_tr[:args.limit], y_tr[:args.limit]
    dev = pick_device()
    model = FashionCNN().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    epoch, timer = 0, Timer()
    ck = load_ckpt(ck_path)
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        epoch, timer = ck["epoch"], Timer(ck["wall"], ck["cpu"])
        print(f"resumed after epoch {epoch}", flush=True)
    log = CsvLog(os.path.join(out, "log.csv"), ["epoch", "train_loss", "test_acc", "lr", "wall_s", "cpu_s"])
    ytr = torch.from_numpy(y_tr)
    while epoch < args.epochs:
        rng = np.random.default_rng(args.seed + epoch)
        perm = rng.permutation(len(x_tr))
        lr = args.lr * (0.3 ** epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        tot, n = 0.0, 0
        for i in range(0, len(perm), args.bs):
            ids = perm[i:i + args.bs]
            x = to01(x_tr[ids])
            flip = torch.from_numpy(rng.random(len(ids)) < 0.5)
            x = torch.where(flip[:, None, None, None], x.flip(3), x).to(dev)
            loss = F.cross_entropy(model(x), ytr[ids].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += loss.item() * len(ids)
            n += len(ids)
        epoch += 1
        _, logits = predict(model, x_te)
        acc = (logits.argmax(1).numpy() == y_te).mean()
        log.log(epoch=epoch, train_loss=tot / n, test_acc=float(acc), lr=lr, wall_s=round(timer.wall()),
                cpu_s=round(timer.cpu()))
        save_ckpt(ck_path, dict(model=model.state_dict(), opt=opt.state_dict(), epoch=epoch, wall=timer.wall(),
                                cpu=timer.cpu()))

    feats, logits = predict(model, x_te)
    acc = float((logits.argmax(1).numpy() == y_te).mean())
    mu, sigma = feature_stats(feats.numpy())
    # sanity reference: FID of 10k training images against the test statistics
    ftr, _ = predict(model, x_tr[:10000])
    from classifier import fid
    fid_train = fid(*feature_stats(ftr.numpy()), mu, sigma)
    model = model.cpu()  # the exported probe is computed on the CPU, as varcode's tests run it
    probe = to01(x_te[:8])
    with torch.no_grad():
        pf = model.features(probe)
        pl = model.fc2(pf)
    t = dict(model.state_dict())
    t.update(fid_ref_mu=torch.from_numpy(mu).float(), fid_ref_sigma=torch.from_numpy(sigma).float(),
             probe_input=probe, probe_features=pf, probe_logits=pl)
    path = os.path.join(MODELS_DIR, "fashion_classifier.safetensors")
    os.makedirs(MODELS_DIR, exist_ok=True)
    save_safetensors(path, t, metadata=dict(arch="conv3x3(1->32)+relu+maxpool2, conv3x3(32->64)+relu+maxpool2, "
                                                 "fc(3136->128)+relu [features], fc(128->10); input (x01-0.5)/0.5",
                                            test_accuracy=f"{acc:.4f}", fid_train10k_vs_test=f"{fid_train:.4f}"))
    res = dict(test_accuracy=acc, fid_train10k_vs_test=fid_train, epochs=epoch, wall_s=timer.wall(), cpu_s=timer.cpu(),
               when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    with open(os.path.join(out, "final.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res), "exported", path, flush=True)
    open(os.path.join(out, "DONE"), "w").write("ok")


if __name__ == "__main__":
    main()
