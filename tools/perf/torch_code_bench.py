"""PyTorch-eager side of the GPU speed comparison (issue #14): VAR-d30 alone, or CoDe (VAR-d30
drafter for the first N scales, VAR-d16 refiner for the rest), then the VQ-VAE decode, timed on
one device with the project's own PyTorch model code (tools/train/var_model.py, vqvae.py,
sample_ref.py), with random seeded weights at the official sizes, so no checkpoint is needed.

How scripts/gpu-check.sh calls it (one JSON line per run set on stdout, progress on stderr):

    python3 tools/perf/torch_code_bench.py --mode code --draft-steps 6 --batch 16 --runs 3 --warmup 1
    python3 tools/perf/torch_code_bench.py --mode var --batch 16 --runs 3 --warmup 1

    # CPU smoke test (tiny models; the GPU figures cannot be had on a CPU):
    nice /usr/bin/python3 tools/perf/torch_code_bench.py --small --device cpu --mode code --draft-steps 3 --batch 2 --runs 1 --warmup 0
    # parity of this script's inference path with sample_ref.generate (CPU, f32, greedy):
    nice /usr/bin/python3 tools/perf/torch_code_bench.py --check

--batch, --draft-steps and --mode take comma lists (e.g. --mode var,code --batch 1,16): the models
are built once and each (mode, draft steps, batch) is one run set, one JSON line:
  {"engine": "pytorch-eager", "mode", "draft_steps", "batch", "images_per_s", "ms_per_image",
   "run_ms": [...], "stage_ms": {"drafter", "refiner", "vae"}, "gpu_peak_mem_bytes",
   "torch_version", "device_name", ...}
run_ms is each timed run's wall time (torch.cuda.synchronize() before and after each run);
images_per_s and ms_per_image come from their mean. stage_ms are means of CUDA-event times
(perf_counter on a CPU) between the stage boundaries; "refiner" is null in --mode var.
gpu_peak_mem_bytes is torch.cuda.max_memory_allocated() over the timed runs, weights included
(every weight in the process: with --mode var,code the d16 is resident during the var runs too).
"engine" reads "pytorch-compile" with --torch-compile.

What it runs, and why so: the published CoDe inference scripts' way (infer_CoDe.py,
sample_CoDe.py), so that the figures are PyTorch eager as users run it:
- fp32 weights, requires_grad off, torch.inference_mode, and torch.autocast around the whole
  generation, VQ-VAE decode included (the published code decodes inside the autocast region).
  --amp bf16 is the default (the issue's setting); the published scripts use fp16 with a note that
  bf16 can be faster: --amp fp16 gives theirs, --amp off plain f32. TF32 matmuls on, cuDNN
  deterministic and not benchmarked, as those scripts set them.
- attention through F.scaled_dot_product_attention with scale 1 (the published code's fallback
  when neither flash-attn nor xformers is installed) where torch has it (>= 2.0), else the
  explicit matmul-softmax of var_model.py (--attn matmul forces that one).
- KV caches as var_model.py keeps them (k and v per block, concatenated scale by scale). CFG doubles
  the batch (label rows, then unconditional rows); sampling is sample_ref.sample_logits (top-k,
  top-p, temperature, torch.multinomial with a seeded generator on the device). Settings per mode
  as published: VAR cfg 1.5, top-k 900, top-p 0.96, temperature 1; CoDe cfg 1.5, top-k 600,
  top-p 0.96, temperature 1.1 for scales 0-6 and 1.0 after.
- CoDe hand-over (shared/spec/model-reference.md 5.3): the drafter runs scales 0..N-1 with its
  cache, keeping f_hat and the continuous inputs it built for scales 1..N; its cache is then
  dropped. The refiner prefills its own cache in one forward pass over positions [0, end_N) with
  the block-causal mask, samples scale N from those positions' logits, and runs N+1..SN-1 cached.
  (The published refiner also runs the head over the earlier prefill positions and samples those
  scales again, then discards them; this script does not, as the spec and varcode don't.)
- weights: every Linear/Conv2d weight ~ N(0, 1/fan_in), biases and embeddings random, drawn on
  the device after construction with the default initialisers switched off (one normal_ per
  tensor on the GPU instead of the per-layer CPU init of 2.4 B parameters; the speed does not
  depend on the weights' values). Parameters: d30 2.01 B, d16 0.31 B, VQ-VAE 0.11 B (its
  encoder included, unused).
- fp32 weights with requires_grad off mean that autocast casts each weight to the autocast dtype
  at every use (its cast cache keeps only leaves that require grad): that is the published cost.
- labels: B random classes of 1000; one generator seed per run, the same for every run.

--torch-compile (off by default: the issue's comparison is eager) compiles each model's per-scale
transformer pass and the VQ-VAE decoder with torch.compile (torch >= 2.0); one graph per token
count (10 scales, the prefill) and batch, all compiled during the warmup, which therefore takes
far longer than an eager one: keep it out of the check script's time budget.
--small builds tiny models (schedule 1,2,3,4,6,8, 16 px images) so that it runs on a CPU.
"""
import argparse
import contextlib
import json
import math
import os
import platform
import re
import sys
import time
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

TRAIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train")
sys.path.insert(0, os.path.abspath(TRAIN_DIR))
from sample_ref import cfg_logits, sample_logits  # noqa: E402
from var_model import VAR, SelfAttention  # noqa: E402
from vqvae import VQVAE  # noqa: E402

# Official 256 px sizes (spec sections 1, 2, 4.3).
FULL = dict(
    patch_nums=(1, 2, 3, 4, 5, 6, 8, 10, 13, 16), num_classes=1000,
    drafter=dict(depth=30, width=1920),  # VAR-d30, 30 heads of 64
    refiner=dict(depth=16, width=1024),  # VAR-d16, 16 heads of 64
    vae=dict(ch=160, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, cvae=32, vocab=4096),
)
# Tiny stand-ins for a CPU smoke test: same code paths, 16 px images.
SMALL = dict(
    patch_nums=(1, 2, 3, 4, 6, 8), num_classes=1000,
    drafter=dict(depth=2, width=128),
    refiner=dict(depth=2, width=64),  # two blocks, so that the prefill mask matters to the check
    vae=dict(ch=32, ch_mult=(1, 2), num_res_blocks=1, cvae=16, vocab=512),
)


# ----------------------------------------------------------------------------- models
@contextlib.contextmanager
def default_init_off():
    """Construct without the per-layer default initialisers (and VAR._init_weights): every weight is
    overwritten by randomize_() right after, so running them would only be time spent (on the CPU
    when torch cannot construct on the device)."""
    # (class, attribute, its own entry or None where inherited, e.g. Conv2d's from _ConvNd)
    patched = [(nn.Linear, "reset_parameters"), (nn.Conv2d, "reset_parameters"),
               (nn.Embedding, "reset_parameters"), (VAR, "_init_weights")]
    saved = [(cls, name, cls.__dict__.get(name)) for cls, name in patched]
    try:
        for cls, name, _ in saved:
            setattr(cls, name, lambda self, *a, **k: None)
        yield
    finally:
        for cls, name, own in saved:
            if own is None:
                delattr(cls, name)
            else:
                setattr(cls, name, own)


@torch.no_grad()
def randomize_(model):
    """Random weights drawn in place on the model's device from the global (seeded) generator.
    Unit-gain linears/convs keep activations of order one through every block, so the blocks do
    change the logits (a --check with near-zero block outputs would prove little)."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            m.weight.normal_(0.0, 1.0 / math.sqrt(m.weight[0].numel()))
            if m.bias is not None:
                m.bias.normal_(0.0, 0.02)
        elif isinstance(m, nn.Embedding):
            m.weight.normal_(0.0, 1.0)
        elif isinstance(m, SelfAttention):
            m.q_bias.normal_(0.0, 0.02)
            m.v_bias.normal_(0.0, 0.02)
    if isinstance(model, VAR):
        model.pos_start.normal_(0.0, 0.1)
        model.pos_1LC.normal_(0.0, 0.1)
    model.requires_grad_(False)
    return model.eval()


def construct(factory, device):
    """Build a module straight on the device where torch can (the torch.device context, >= 2.0),
    else on the CPU (uninitialised storage, so cheap) and move it."""
    with default_init_off():
        if hasattr(torch.device("cpu"), "__enter__"):
            with torch.device(device):
                m = factory()
        else:
            m = factory().to(device)
    return randomize_(m)


def build_models(cfg, device, seed, want_refiner):
    torch.manual_seed(seed)
    pns, nc = cfg["patch_nums"], cfg["num_classes"]
    v = cfg["vae"]
    vae = construct(lambda: VQVAE(patch_nums=pns, **v), device)

    def var(d):
        return construct(lambda: VAR(d["depth"], d["width"], v["vocab"], v["cvae"], nc, pns), device)

    drafter = var(cfg["drafter"])
    refiner = var(cfg["refiner"]) if want_refiner else None
    return vae, drafter, refiner


# ----------------------------------------------------------------------------- attention
def _torch_at_least(major, minor):
    nums = re.findall(r"\d+", torch.__version__)[:2]
    return tuple(int(n) for n in nums) >= (major, minor)


SDPA_HAS_SCALE = _torch_at_least(2, 1)  # F.scaled_dot_product_attention's scale= came in 2.1


def _sdpa_forward(self, x, attn_bias=None, use_cache=False):
    """SelfAttention.forward of var_model.py with the attention product done by
    F.scaled_dot_product_attention, as the published code runs it without flash-attn / xformers:
    q and k are l2-normalised and q carries the learned scale, so the softmax scale is 1."""
    B, l, C = x.shape
    q, k, v = self.qkv(x)
    if use_cache:
        if self.kv_cache is not None:
            k = torch.cat((self.kv_cache[0], k), dim=2)
            v = torch.cat((self.kv_cache[1], v), dim=2)
        self.kv_cache = (k, v)
    # Under autocast q comes out f32 (bf16 normalised q times the f32 scale parameter) and k, v in
    # the autocast dtype; autocast would cast q for SDPA anyway, casting here also serves --amp off.
    q = q.to(k.dtype)
    mask = None if attn_bias is None else attn_bias.to(q.dtype)
    if SDPA_HAS_SCALE:
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
    else:  # torch 2.0 has no scale argument: its default 1/sqrt(64) = 1/8 is undone exactly by * 8
        o = F.scaled_dot_product_attention(q * math.sqrt(q.shape[-1]), k, v, attn_mask=mask)
    return self.proj(o.transpose(1, 2).reshape(B, l, C))


def set_attention(models, impl):
    """impl 'sdpa': every block's attention through _sdpa_forward (an instance attribute, so the
    class and the fixtures' code stay as they are); 'matmul': var_model.py's own forward."""
    for m in models:
        if m is None:
            continue
        for b in m.blocks:
            if impl == "sdpa":
                b.attn.forward = types.MethodType(_sdpa_forward, b.attn)
            elif "forward" in b.attn.__dict__:
                del b.attn.forward


# ----------------------------------------------------------------------------- generation
class Settings:
    def __init__(self, cfg, top_k, top_p, temps):
        self.cfg, self.top_k, self.top_p, self.temps = cfg, top_k, top_p, temps


def published_settings(mode, SN, args):
    if mode == "var":
        cfg, top_k, top_p, temps = 1.5, 900, 0.96, [1.0] * SN
    else:
        cfg, top_k, top_p, temps = 1.5, 600, 0.96, [1.1 if si <= 6 else 1.0 for si in range(SN)]
    if args.cfg is not None:
        cfg = args.cfg
    if args.top_k is not None:
        top_k = args.top_k
    if args.top_p is not None:
        top_p = args.top_p
    if args.temperature is not None:
        temps = [args.temperature] * SN
    return Settings(cfg, top_k, top_p, temps)


class Pass:
    """One model's transformer pass over a scale's (or the prefill's) tokens, with the KV cache:
    blocks, then the head as the published get_logits does it (norm and head on f32 input, f32
    logits for CFG and sampling). Optionally torch.compile'd as one function per model."""

    def __init__(self, model, compile_it):
        self.m = model
        self.fn = torch.compile(self._run, dynamic=False) if compile_it else self._run

    def _run(self, x, cond, attn_bias, head_from):
        m = self.m
        for b in m.blocks:
            x = b(x, cond, attn_bias, use_cache=True)
        return m.head(m.head_nm(x[:, head_from:].float(), cond).float()).float()

    def __call__(self, x, cond, attn_bias=None, head_from=0):
        return self.fn(x, cond, attn_bias, head_from)


def start_inputs(m, label_2B):
    """cond [2B, C] and the first scale's input [2B, 1, C] (spec 5.2: cond + pos_start + lvl_pos[0])."""
    cond = m.class_emb(label_2B)
    return cond, (cond + m.pos_start[0, 0]).unsqueeze(1) + m.lvl_pos()[:, :1]


def next_input(quant, f_hat, si):
    """Continuous input of scale si+1: area_down(f_hat) as [B, pn^2, Cvae] (before word_embed)."""
    B, C = f_hat.shape[0], quant.cvae
    nxt = quant.patch_nums[si + 1]
    return F.interpolate(f_hat, size=(nxt, nxt), mode="area").reshape(B, C, -1).transpose(1, 2)


def drafter_stage(dp, quant, label_2B, B, n_scales, s, gen):
    """Scales 0..n_scales-1 with the drafter's cache. Returns (f_hat, tokens, inputs of scales
    1..n_scales as [B, pn^2, Cvae] each, for a refiner's prefill)."""
    m = dp.m
    SN, P = len(m.patch_nums), m.patch_nums[-1]
    m.reset_cache()
    cond, x = start_inputs(m, label_2B)
    lvl_pos = m.lvl_pos()
    f_hat = torch.zeros(B, quant.cvae, P, P, device=cond.device)
    tokens, inputs = [], []
    for si in range(n_scales):
        if si > 0:
            b, e = m.begin_ends[si]
            x = (m.word_embed(inputs[-1]) + lvl_pos[:, b:e]).repeat(2, 1, 1)  # same input, both halves
        logits = dp(x, cond)
        idx = sample_logits(cfg_logits(logits, B, s.cfg, si, SN), s.top_k, s.top_p, s.temps[si], gen)
        tokens.append(idx)
        f_hat = quant.add_scale(f_hat, si, idx)
        if si < SN - 1:
            inputs.append(next_input(quant, f_hat, si))
    m.reset_cache()  # CoDe hands over f_hat and the inputs, not the drafter's cache
    return f_hat, tokens, inputs


def refiner_stage(rp, quant, label_2B, B, N, f_hat, inputs, s, gen):
    """CoDe's refiner (spec 5.3): one prefill pass over positions [0, end_N) with the block-causal
    mask filling its own cache, scale N sampled from its positions' logits, then N+1..SN-1 cached."""
    m = rp.m
    SN = len(m.patch_nums)
    m.reset_cache()
    cond, x0 = start_inputs(m, label_2B)
    lvl_pos = m.lvl_pos()
    bN, eN = m.begin_ends[N]
    drafted = (m.word_embed(torch.cat(inputs[:N], dim=1)) + lvl_pos[:, 1:eN]).repeat(2, 1, 1)
    x = torch.cat((x0, drafted), dim=1)
    mask = m.attn_bias_for_masking[:, :, :eN, :eN]
    logits = rp(x, cond, mask, head_from=bN)  # the head runs on scale N's positions only
    tokens = [sample_logits(cfg_logits(logits, B, s.cfg, N, SN), s.top_k, s.top_p, s.temps[N], gen)]
    f_hat = quant.add_scale(f_hat, N, tokens[0])
    for si in range(N + 1, SN):
        b, e = m.begin_ends[si]
        x = (m.word_embed(next_input(quant, f_hat, si - 1)) + lvl_pos[:, b:e]).repeat(2, 1, 1)
        logits = rp(x, cond)
        idx = sample_logits(cfg_logits(logits, B, s.cfg, si, SN), s.top_k, s.top_p, s.temps[si], gen)
        tokens.append(idx)
        f_hat = quant.add_scale(f_hat, si, idx)
    m.reset_cache()
    return f_hat, tokens


class StageClock:
    """Stage boundaries: CUDA events on the GPU (timeline time, launch gaps included, no extra
    synchronisation inside a run), perf_counter on a CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.marks = []

    def mark(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.marks.append(ev)
        else:
            self.marks.append(time.perf_counter())

    def spans_ms(self):
        """Call after the run has been synchronised."""
        out = []
        for a, b in zip(self.marks, self.marks[1:]):
            out.append(a.elapsed_time(b) if self.cuda else (b - a) * 1e3)
        return out


def amp_context(device, amp):
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def generate(vae, dp, rp, labels, N, s, seed, device, amp, clock=None):
    """One batch: tokens (list per scale) and images [B, 3, H, W] in [0, 1]. N None: VAR alone."""
    B = labels.shape[0]
    nc = dp.m.num_classes
    SN = len(dp.m.patch_nums)
    label_2B = torch.cat((labels, torch.full_like(labels, nc)))
    gen = torch.Generator(device=device).manual_seed(seed)
    quant = vae.quantize
    mark = clock.mark if clock is not None else (lambda: None)
    with torch.inference_mode():
        with amp_context(device, amp):
            mark()
            f_hat, tokens, inputs = drafter_stage(dp, quant, label_2B, B, SN if N is None else N, s, gen)
            mark()
            if N is not None:
                f_hat, more = refiner_stage(rp, quant, label_2B, B, N, f_hat, inputs, s, gen)
                tokens += more
                mark()
        with amp_context(device, amp if vae_amp(device) else "off"):
            img = vae.fhat_to_img(f_hat).add(1).mul(0.5)
        mark()
    return tokens, img


def vae_amp(device):
    """The decode runs under the autocast on CUDA, as published. CPU autocast (torch 1.13 at least)
    leaves GroupNorm out of its f32 list and then fails on bf16 input, so a CPU decodes in f32."""
    return device.type == "cuda"


# ----------------------------------------------------------------------------- timing
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def run_set(args, device, vae, dp, rp, mode, N, B, attn_used, build_s):
    SN = len(dp.m.patch_nums)
    s = published_settings(mode, SN, args)
    g = torch.Generator().manual_seed(args.seed + B)
    labels = torch.randint(0, dp.m.num_classes, (B,), generator=g).to(device)
    for _ in range(args.warmup):
        generate(vae, dp, rp, labels, N, s, args.seed, device, args.amp)
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run_ms, stages = [], []
    for _ in range(args.runs):
        clock = StageClock(device)
        sync(device)
        t0 = time.perf_counter()
        generate(vae, dp, rp, labels, N, s, args.seed, device, args.amp, clock)
        sync(device)
        run_ms.append((time.perf_counter() - t0) * 1e3)
        stages.append(clock.spans_ms())
    mean_ms = sum(run_ms) / len(run_ms)
    cols = list(zip(*stages))
    means = [sum(c) / len(c) for c in cols]
    if N is None:
        stage_ms = {"drafter": means[0], "refiner": None, "vae": means[1]}
    else:
        stage_ms = {"drafter": means[0], "refiner": means[1], "vae": means[2]}
    return {
        "engine": "pytorch-eager" if not args.torch_compile else "pytorch-compile",
        "mode": mode, "draft_steps": N, "batch": B,
        "images_per_s": B / (mean_ms / 1e3), "ms_per_image": mean_ms / B,
        "run_ms": run_ms, "stage_ms": stage_ms,
        "gpu_peak_mem_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        "torch_version": torch.__version__, "device_name": device_name(device),
        "runs": args.runs, "warmup": args.warmup, "amp": args.amp,
        "vae_amp": args.amp if vae_amp(device) else "off", "attention": attn_used,
        "torch_compile": bool(args.torch_compile), "small": bool(args.small),
        "cfg": s.cfg, "top_k": s.top_k, "top_p": s.top_p, "model_build_s": build_s,
    }


# ----------------------------------------------------------------------------- parity check
def _sdpa_stand_in(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """The documented semantics of F.scaled_dot_product_attention, for torch < 2.0 only, so that
    _sdpa_forward's own handling (cache, scale, mask, layout) is checked where torch lacks SDPA."""
    a = (q @ k.transpose(-2, -1)) * (scale if scale is not None else q.shape[-1] ** -0.5)
    if attn_mask is not None:
        a = a + attn_mask
    return a.softmax(dim=-1) @ v


def check(args):
    """This script's inference path against tools/train/sample_ref.generate (CoDe's refiner there is
    fed scale by scale; spec 5.3 says both must agree): f32 on the CPU, greedy, tokens equal (the
    images then follow), for VAR and for CoDe at every N, with var_model.py's attention and with
    _sdpa_forward in both its forms (scale=1 and torch 2.0's pre-scaled q)."""
    global SDPA_HAS_SCALE
    from sample_ref import generate as ref_generate
    device = torch.device("cpu")
    vae, drafter, refiner = build_models(SMALL, device, args.seed, True)
    SN = len(SMALL["patch_nums"])
    labels = torch.tensor([3, 999, 0])
    greedy = Settings(1.5, 1, 0.0, [1.0] * SN)
    stand_in = not hasattr(F, "scaled_dot_product_attention")
    if stand_in:
        F.scaled_dot_product_attention = _sdpa_stand_in
    torch_has_scale = SDPA_HAS_SCALE or stand_in
    forms = [("matmul", "matmul", None), ("sdpa-no-scale-arg", "sdpa", False)]
    if torch_has_scale:
        forms.append(("sdpa", "sdpa", True))
    results, ok = [], True
    try:
        for N in [None] + list(range(1, SN)):
            set_attention([drafter, refiner], "matmul")
            ref_tok, ref_img = ref_generate(vae, drafter, labels, cfg=1.5, top_k=1, top_p=0.0, seed=0,
                                            refiner=refiner if N else None, draft_steps=N)
            for name, impl, has_scale in forms:
                set_attention([drafter, refiner], impl)
                SDPA_HAS_SCALE = has_scale
                tok, img = generate(vae, Pass(drafter, False), Pass(refiner, False), labels, N, greedy, 0,
                                    device, "off")
                tok = torch.cat(tok, dim=1)
                same = bool(torch.equal(tok, ref_tok))
                diff = float((img - ref_img).abs().max())
                good = same and diff < 1e-4
                ok &= good
                results.append(dict(draft_steps=N, attention=name, tokens_equal=same,
                                    image_max_abs_diff=diff, ok=good))
    finally:
        SDPA_HAS_SCALE = _torch_at_least(2, 1)
        if stand_in:
            del F.scaled_dot_product_attention
    print(json.dumps({"check": "torch_code_bench vs sample_ref.generate", "ok": ok,
                      "sdpa": "stand-in with SDPA's documented semantics (torch has none)" if stand_in else "torch",
                      "torch_version": torch.__version__, "cases": results}), flush=True)
    return 0 if ok else 1


# ----------------------------------------------------------------------------- main
def int_list(text):
    return [int(t) for t in str(text).split(",") if t.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="code",
                    help="var, code, or var,code (one process, the d30 built once: less whole-run time)")
    ap.add_argument("--draft-steps", default="6", help="N (comma list allowed), 1 <= N <= SN-1; --mode code")
    ap.add_argument("--batch", default="16", help="images per batch (comma list allowed)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--amp", default="bf16", choices=("bf16", "fp16", "off"),
                    help="autocast dtype (published scripts: fp16; issue #14: bf16)")
    ap.add_argument("--attn", default="auto", choices=("auto", "sdpa", "matmul"),
                    help="auto: SDPA where torch has it, else var_model.py's matmul-softmax")
    ap.add_argument("--torch-compile", action="store_true", help="optional; eager is the comparison")
    ap.add_argument("--small", action="store_true", help="tiny models, for a CPU smoke test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--cfg", type=float, default=None)
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--top-p", type=float, default=None)
    ap.add_argument("--temperature", type=float, default=None, help="one temperature for every scale")
    ap.add_argument("--check", action="store_true",
                    help="parity with sample_ref.generate on tiny models (CPU, f32, greedy), then exit")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.check:
        return check(args)

    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("torch_code_bench: --device cuda but torch sees no CUDA device")
        # the published scripts' settings
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    if args.torch_compile and not hasattr(torch, "compile"):
        sys.exit(f"torch_code_bench: --torch-compile needs torch >= 2.0 (this is {torch.__version__})")
    cfg = SMALL if args.small else FULL
    SN = len(cfg["patch_nums"])
    modes = [t.strip() for t in args.mode.split(",") if t.strip()]
    if not modes or set(modes) - {"var", "code"}:
        sys.exit(f"torch_code_bench: --mode {args.mode}: var, code or var,code")
    steps = int_list(args.draft_steps) if "code" in modes else []
    for N in steps:
        if not 1 <= N <= SN - 1:
            sys.exit(f"torch_code_bench: --draft-steps {N}: need 1 <= N <= {SN - 1}")
    sets = [(mode, N) for mode in modes for N in (steps if mode == "code" else [None])]
    batches = int_list(args.batch)
    if not batches or min(batches) < 1 or args.runs < 1 or args.warmup < 0:
        sys.exit("torch_code_bench: --batch >= 1, --runs >= 1, --warmup >= 0")

    t0 = time.perf_counter()
    vae, drafter, refiner = build_models(cfg, device, args.seed, "code" in modes)
    sync(device)
    build_s = time.perf_counter() - t0
    attn = args.attn
    if attn == "auto":
        attn = "sdpa" if hasattr(F, "scaled_dot_product_attention") else "matmul"
    elif attn == "sdpa" and not hasattr(F, "scaled_dot_product_attention"):
        sys.exit(f"torch_code_bench: --attn sdpa needs torch >= 2.0 (this is {torch.__version__})")
    set_attention([drafter, refiner], attn)
    if args.torch_compile:
        from torch import _dynamo
        # one graph per token count (10 scales + the prefill) and per batch: above the default limit
        _dynamo.config.cache_size_limit = max(_dynamo.config.cache_size_limit, 64)
        vae.decoder = torch.compile(vae.decoder, dynamic=False)
    dp = Pass(drafter, args.torch_compile)
    rp = Pass(refiner, args.torch_compile) if refiner is not None else None
    print(f"torch_code_bench: models built in {build_s:.1f} s on {device_name(device)} "
          f"(torch {torch.__version__}, attention {attn}, amp {args.amp})", file=sys.stderr, flush=True)
    for mode, N in sets:
        for B in batches:
            row = run_set(args, device, vae, dp, rp, mode, N, B, attn, build_s)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
