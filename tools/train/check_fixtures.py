"""Checks our PyTorch modules against the parity fixtures (shared/fixtures/tiny): the VQ-VAE
(decode, encode tokens, f_hat, reconstruction), both VAR transformers (teacher-forced logits,
greedy generation) and collaborative decoding N=4 and N=8 via sample_ref.generate.

    /usr/bin/python3 tools/train/check_fixtures.py [fixture_dir]
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sample_ref import build_vae, generate, load_var, load_vae  # noqa: E402


def split(tok, pns):
    out, b = [], 0
    for pn in pns:
        out.append(tok[:, b:b + pn * pn])
        b += pn * pn
    return out


def main():
    fx = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../shared/fixtures/tiny")
    fx = os.path.abspath(fx) + "/"
    torch.set_num_threads(2)
    npy = lambda n: torch.from_numpy(np.load(fx + n))  # noqa: E731
    d, r = load_var(fx + "drafter.pth"), load_var(fx + "refiner.pth")
    vsd, vcfg = load_vae(fx + "vae.pth")
    vae = build_vae(vsd, vcfg, d.patch_nums)
    assert list(torch.load(fx + "drafter.pth").keys()) == list(d.state_dict().keys()), "VAR key order differs"
    assert set(vsd.keys()) == set(vae.state_dict().keys()), "VAE keys differ"
    worst = {}
    worst["vae_decode"] = (vae.fhat_to_img(npy("vae_decode_fhat.npy")) - npy("vae_decode_image.npy")).abs().max().item()
    idx, f_hat = vae.img_to_idx(npy("vae_encode_input.npy"))
    assert torch.equal(torch.cat(idx, 1), npy("vae_encode_tokens.npy")), "VAE tokens differ"
    worst["vae_encode_fhat"] = (f_hat - npy("vae_encode_fhat.npy")).abs().max().item()
    worst["vae_encode_recon"] = ((vae.fhat_to_img(f_hat) + 1) / 2 - npy("vae_encode_recon.npy")).abs().max().item()
    labels = torch.tensor([207, 980])
    for name, m in (("drafter", d), ("refiner", r)):
        tok = npy(f"var_{name}_tokens.npy")
        x = vae.quantize.tokens_to_var_input(split(tok[:1], d.patch_nums))
        with torch.no_grad():
            worst[f"{name}_tf_logits"] = (m(torch.tensor([207]), x) - npy(f"var_{name}_tf_logits.npy")).abs().max().item()
        t, img = generate(vae, m, labels, cfg=1.5, top_k=1, top_p=0.0)
        assert torch.equal(t, tok), f"{name}: greedy tokens differ"
        worst[f"{name}_image"] = (img - npy(f"var_{name}_image.npy")).abs().max().item()
    for n in (4, 8):
        t, img = generate(vae, d, labels, cfg=1.5, top_k=1, top_p=0.0, refiner=r, draft_steps=n)
        assert torch.equal(t, npy(f"code_n{n}_tokens.npy")), f"CoDe N={n}: tokens differ"
        worst[f"code_n{n}_image"] = (img - npy(f"code_n{n}_image.npy")).abs().max().item()
    for k, v in worst.items():
        print(f"{k:22s} max abs err {v:.2e}")
    assert max(worst.values()) < 1e-3
    print("all fixture checks passed (tokens identical)")


if __name__ == "__main__":
    main()
