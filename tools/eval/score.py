"""Score generated Fashion-MNIST images with the evaluation classifier:
(a) class accuracy (classifier's argmax vs the class asked for), (b) FID on the classifier's
128-d penultimate features against the 10,000 test images (statistics stored in the classifier file).

Images: [N, 3, 32, 32] in [0, 1] (what sample_ref.py --save-npy and the engine produce).

    # score images saved as .npy (labels: int64 [N] .npy, or --classes/--per-class layout)
    /usr/bin/python3 tools/eval/score.py --images out_image.npy --labels out_labels.npy
    # generate with the reference sampler, then score (100 per class)
    /usr/bin/python3 tools/eval/score.py --generate 100 [--refiner models/fashion_refiner.pth --draft-steps 3]
    # reference points: test images, VAE reconstructions of test images
    /usr/bin/python3 tools/eval/score.py --baselines
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "train"))
from classifier import feature_stats, fid, load_classifier  # noqa: E402
from common import MODELS_DIR, load_fashion_u8, model_images_to_gray28, to_model_images  # noqa: E402

CLS_PATH = os.path.join(MODELS_DIR, "fashion_classifier.safetensors")


@torch.no_grad()
def score(img01, labels, cls_path=CLS_PATH, bs=500):
    """img01 [N, 3, 32, 32] in [0, 1], labels [N] -> dict(accuracy, fid, per-class accuracy)."""
    model, mu_ref, sig_ref = load_classifier(cls_path)
    feats, preds = [], []
    for i in range(0, len(img01), bs):
        f = model.features(model_images_to_gray28(img01[i:i + bs]))
        feats.append(f)
        preds.append(model.fc2(f).argmax(1))
    feats, preds = torch.cat(feats).numpy(), torch.cat(preds).numpy()
    labels = np.asarray(labels)
    per = {int(c): float((preds[labels == c] == c).mean()) for c in np.unique(labels)}
    return dict(n=len(labels), accuracy=float((preds == labels).mean()),
                fid=fid(*feature_stats(feats), mu_ref, sig_ref), per_class_accuracy=per)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images")
    ap.add_argument("--labels")
    ap.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    ap.add_argument("--per-class", type=int, default=None, help="labels = each class repeated per-class times")
    ap.add_argument("--generate", type=int, default=None, help="images per class to generate with sample_ref")
    ap.add_argument("--vae", default=os.path.join(MODELS_DIR, "fashion_vae.pth"))
    ap.add_argument("--drafter", default=os.path.join(MODELS_DIR, "fashion_drafter.pth"))
    ap.add_argument("--refiner", default=None)
    ap.add_argument("--draft-steps", type=int, default=None)
    ap.add_argument("--cfg", type=float, default=1.5)
    ap.add_argument("--top-k", type=int, default=900)
    ap.add_argument("--top-p", type=float, default=0.96)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baselines", action="store_true")
    ap.add_argument("--classifier", default=CLS_PATH)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the result here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    classes = [int(c) for c in args.classes.split(",")]
    results = {}
    if args.baselines:
        x_te, y_te = load_fashion_u8("test")
        img = (to_model_images(x_te) + 1) / 2
        results["test_images"] = score(img, y_te, args.classifier)
        from sample_ref import build_vae, load_vae
        vsd, vcfg = load_vae(args.vae)
        from common import PATCH_NUMS
        vae = build_vae(vsd, vcfg, PATCH_NUMS)
        recs = []
        with torch.no_grad():
            for i in range(0, len(x_te), 500):
                _, f_hat = vae.img_to_idx(to_model_images(x_te[i:i + 500]))
                recs.append((vae.fhat_to_img(f_hat) + 1) / 2)
        results["vae_reconstructions"] = score(torch.cat(recs), y_te, args.classifier)
    if args.generate:
        from sample_ref import build_vae, generate, load_vae, load_var
        drafter = load_var(args.drafter)
        vsd, vcfg = load_vae(args.vae)
        vae = build_vae(vsd, vcfg, drafter.patch_nums)
        refiner = load_var(args.refiner) if args.refiner else None
        labels = torch.tensor([c for c in classes for _ in range(args.generate)])
        imgs = []
        for i in range(0, len(labels), 100):
            _, img = generate(vae, drafter, labels[i:i + 100], args.cfg, args.top_k, args.top_p, args.temperature,
                              args.seed + i, refiner, args.draft_steps)
            imgs.append(img)
        name = "generated_" + ("var" if refiner is None else f"code_n{args.draft_steps}")
        results[name] = score(torch.cat(imgs), labels.numpy(), args.classifier)
        results[name]["settings"] = dict(cfg=args.cfg, top_k=args.top_k, top_p=args.top_p,
                                         temperature=args.temperature, seed=args.seed)
    if args.images:
        img = torch.from_numpy(np.load(args.images)).float()
        if args.labels:
            labels = np.load(args.labels)
        else:
            k = args.per_class or len(img) // len(classes)
            labels = np.array([c for c in classes for _ in range(k)])
        results[os.path.basename(args.images)] = score(img, labels, args.classifier)
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
