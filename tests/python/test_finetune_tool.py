"""tools/train/finetune_code.py's model surgery and targets (issue #19), on the shipped models.
Needs PyTorch (Debian's python3-torch), which the build does not: skipped without it."""

import os
import sys

import pytest

torch = pytest.importorskip("torch")

from conftest import MODELS, ROOT  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
from finetune_code import cond_and_guided, forward_prefix, grow_depth  # noqa: E402
from sample_ref import load_var  # noqa: E402


def inputs(m, batch=3):
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 7, m.num_classes])[:batch]  # [B], the last one unconditional
    x = torch.randn(batch, m.L - 1, m.Cvae, generator=g)  # [B, L - 1, Cvae]
    return labels, x


def test_grown_refiner_computes_what_the_small_one_did():
    small = load_var(os.path.join(MODELS, "fashion_refiner.pth"))
    grown = grow_depth(small, small.depth + 2)
    assert grown.depth == small.depth + 2
    labels, x = inputs(small)
    with torch.no_grad():
        a = forward_prefix(small, labels, x, small.L)  # [B, L, V]
        b = forward_prefix(grown, labels, x, small.L)
    # the new blocks' AdaLN gates start at ~1e-5 of VAR's init: logits move by ~1e-5 of their size
    assert (a - b).abs().max().item() < 1e-4 * a.abs().max().item()
    for k, v in small.state_dict().items():
        assert torch.equal(v, grown.state_dict()[k]), k


def test_guided_logits_are_cfg_per_scale():
    m = load_var(os.path.join(MODELS, "fashion_refiner.pth"))
    labels, x = inputs(m, 2)
    with torch.no_grad():
        cond = forward_prefix(m, labels, x, m.L)  # [B, L, V]
        uncond = forward_prefix(m, torch.full_like(labels, m.num_classes), x, m.L)
        cond2, guided = cond_and_guided(m, labels, x, m.L, 1.5, m.num_classes)
        plain, plain_guided = cond_and_guided(m, labels, x, m.L, 0.0, m.num_classes)
    assert torch.equal(plain, cond) and torch.equal(plain_guided, cond)
    assert (cond2 - cond).abs().max().item() < 1e-4  # the conditional half of the doubled pass
    SN = len(m.patch_nums)
    for si, (b, e) in enumerate(m.begin_ends):  # spec 5.1: t = cfg * si / (SN - 1)
        t = 1.5 * si / (SN - 1)
        want = (1 + t) * cond[:, b:e] - t * uncond[:, b:e]
        assert (guided[:, b:e] - want).abs().max().item() < 1e-4, si
