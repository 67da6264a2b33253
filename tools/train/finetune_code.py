"""CoDe's specialised fine-tuning for draft steps N (Collaborative Decoding, Chen et al. 2024):
given a drafter, a refiner and N, writes drafter_N / refiner_N in the official key layout (a plain
state_dict, loadable by the engine unchanged).

Three phases, one after the other, each skipped when its step count is 0:

  distill   the refiner on every scale:  (1 - alpha) CE(data tokens) + alpha KL(drafter || refiner)
  special   the refiner on the scales it draws at hand-over N (positions from scale N on), same loss
  drafter   the drafter on the scales it draws (positions before scale N): CE(data tokens); only
            that prefix of the sequence runs through it (block-causal, so nothing later is needed)

Teacher forcing on data tokens (the drafter frozen as the teacher), class dropout 10% to the
unconditional class (the same labels for teacher and student, so that CFG's unconditional branch
is distilled too; decided once per sequence), the teacher's top-k log-probabilities cached per
sequence (so from the second epoch on a step costs only the refiner), AdamW, warm-up then cosine
to 10% per phase, gradient clipping 2. Each phase keeps the weights with the lowest validation loss (its own loss on the
validation tokens), and exports those.

--refiner-depth D grows the refiner first (blocks appended with near-identity AdaLN gates: a larger
refiner that starts as the small one). --guided-cfg C makes the KL target the classifier-free
guided distribution that generation samples from (CFG with t = C * si / (SN - 1) on the teacher's
and the student's conditional and unconditional passes) instead of the conditional one; every
sequence then keeps its class, and the CE term stays on the conditional logits.

Models are loaded by their tensor shapes (tools/train/sample_ref.py): ours or VAR checkpoints in
the official layout (var_d16.pth as refiner, var_d30.pth as drafter, vae_ch160v4096z32.pth).

Data: --tokens FILE in tokenize_data.py's format (dict train, train_labels, test, test_labels;
int16 [n, L] tokens, int64 labels). Without it, the tool tokenizes the first --train-images
Fashion-MNIST training images and --val-images test images with the given VAE, in resumable
chunks under --tokens-cache (for ImageNet-sized models, make the tokens file first).

Resumable: all state (phase, step, weights, optimizer, best weights) is in <work-dir>/ckpt.pt (the
teacher cache in teacher_cache.pt), written atomically every --ckpt-every seconds and on exit
(SIGTERM / Ctrl-C included); run the same command again to go on. The best weights so far are
exported whenever they improve. --time-budget S ends this invocation after S seconds of training
(checkpoint kept, the best weights exported), so a long run is split across sittings. Losses:
<work-dir>/log.csv (train) and val.csv. The GPU is used when PyTorch sees one ($VARCODE_TRAIN_DEVICE forces cpu/cuda).

    nice -n 19 /usr/bin/python3 tools/train/finetune_code.py --draft-steps 3 --time-budget 3600
    # official files: --vae vae_ch160v4096z32.pth --drafter var_d30.pth --refiner var_d16.pth \\
    #                 --tokens imagenet_tokens.pt --out-dir out --prefix ""   (-> out/drafter_N.pth ...)
"""
import argparse
import json
import math
import os
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (MODELS_DIR, WORK_DIR, CsvLog, Timer, export_state_dict, load_ckpt, load_fashion_u8,  # noqa: E402
                    pick_device, save_ckpt, setup_torch, to_model_images)
from sample_ref import build_vae, load_vae, load_var  # noqa: E402
from var_model import VAR  # noqa: E402

PHASES = ("distill", "special", "drafter")


# ----------------------------------------------------------------------------- data
def tokenize_subset(vae, parts, n_train, n_val, chunk=1000):
    """Tokens of the first n_train training and n_val test images, chunk by chunk (each chunk a file in
    `parts`, so a kill loses at most one chunk). Returns the tokenize_data.py dict."""
    os.makedirs(parts, exist_ok=True)
    dev = next(vae.parameters()).device
    out = {}
    for split, n in (("test", n_val), ("train", n_train)):
        x, y = load_fashion_u8(split)
        n = min(n, len(x))
        toks = []
        for i in range(0, n, chunk):
            j = min(n, i + chunk)
            p = os.path.join(parts, f"{split}_{i:06d}_{j:06d}.pt")
            if not os.path.exists(p):
                with torch.no_grad():
                    idx, _ = vae.img_to_idx(to_model_images(x[i:j]).to(dev))
                save_ckpt(p, torch.cat(idx, dim=1).to(torch.int16).cpu())
                print(f"tokenized {split} {j}/{n}", flush=True)
            toks.append(torch.load(p))
        out[split] = torch.cat(toks)
        out[split + "_labels"] = torch.from_numpy(y[:n].copy())
    return out


def grow_depth(m, depth):
    """m with blocks appended up to `depth`. A new block has VAR's initialisation, whose AdaLN gates
    start at ~1e-5 of the others, so the grown model computes what m did and training opens the new
    blocks gradually (CoDe allows a larger refiner; this keeps what the small one learnt)."""
    if depth <= m.depth:
        return m
    g = VAR(depth, m.C, m.V, m.Cvae, m.num_classes, m.patch_nums).to(next(m.parameters()).device)
    missing, unexpected = g.load_state_dict(m.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("blocks.") and int(k.split(".")[1]) >= m.depth for k in missing)
    return g.eval()


def split_scales(tok_BL, patch_nums):
    out, b = [], 0
    for pn in patch_nums:
        out.append(tok_BL[:, b:b + pn * pn])
        b += pn * pn
    return out


# ----------------------------------------------------------------------------- forward / losses
def forward_prefix(m, label_B, x_BLC, end):
    """VAR teacher forcing over positions [0, end) only: logits [B, end, V]. With end = L this is
    VAR.forward (without its own class dropout: labels arrive dropped already)."""
    B = label_B.shape[0]
    cond = m.class_emb(label_B)  # [B, C]
    sos = cond.unsqueeze(1) + m.pos_start.expand(B, 1, -1)  # [B, 1, C]
    x = torch.cat((sos, m.word_embed(x_BLC[:, :end - 1].float())), dim=1) + m.lvl_pos()[:, :end]  # [B, end, C]
    bias = m.attn_bias_for_masking[:, :, :end, :end]  # [1, 1, end, end]
    for b in m.blocks:
        x = b(x, cond, bias)
    return m.head(m.head_nm(x, cond))  # [B, end, V]


def cond_and_guided(m, label_B, x_BLC, end, guided_cfg, num_classes):
    """(conditional logits, the classifier-free guided ones generation samples from), each [B, end, V]
    (spec 5.1: t = cfg * si / (SN - 1) per position's scale si; one pass over both label sets).
    Without guidance (guided_cfg <= 0) both are forward_prefix's logits."""
    if guided_cfg <= 0:
        cond = forward_prefix(m, label_B, x_BLC, end).float()  # [B, end, V]
        return cond, cond
    B = label_B.shape[0]
    both = forward_prefix(m, torch.cat((label_B, torch.full_like(label_B, num_classes))), torch.cat((x_BLC, x_BLC)),
                          end).float()  # [2B, end, V]
    t = (guided_cfg * m.lvl_1L[0, :end].float() / (len(m.patch_nums) - 1)).view(1, end, 1)  # [1, end, 1]
    return both[:B], (1 + t) * both[:B] - t * both[B:]


class TeacherCache:
    """The drafter's (the teacher's) top-k log-probabilities for every position of every sequence,
    computed the first time a sequence is drawn and kept: the drafter costs ~12x the refiner per
    token, so after the first epoch a step costs the refiner's forward and backward only. A
    sequence always comes with the same label (its class, or the unconditional class for a fixed
    share of the sequences: class dropout decided once per sequence), so its teacher output is fixed."""

    def __init__(self, n, L, k, labels, num_classes, cond_drop, seed, guided_cfg=0.0):
        self.idx = torch.zeros(n, L, k, dtype=torch.int16)  # [n, L, k] token ids
        self.logp = torch.zeros(n, L, k, dtype=torch.float16)  # [n, L, k] log-probabilities
        self.have = torch.zeros(n, dtype=torch.bool)
        # guided: the target is the distribution generation samples from, CFG on every position
        # (so every sequence keeps its class: the unconditional pass is part of each target)
        drop = torch.from_numpy(np.random.default_rng(seed).random(n) < (0.0 if guided_cfg > 0 else cond_drop))
        self.labels = torch.where(drop, torch.full_like(labels.cpu(), num_classes), labels.cpu())  # [n]
        self.k, self.dirty, self.guided_cfg, self.num_classes = k, False, float(guided_cfg), num_classes

    @torch.no_grad()
    def get(self, drafter, ids, x_BLC):
        """ids [B] (cpu), inputs x [B, L - 1, Cvae] -> (idx [B, L, k] int64, logp [B, L, k] f32) on x's device."""
        miss = (~self.have[ids]).nonzero().flatten()
        if len(miss):
            lab = self.labels[ids[miss]].to(x_BLC.device)
            _, guided = cond_and_guided(drafter, lab, x_BLC[miss], drafter.L, self.guided_cfg, self.num_classes)
            lp = F.log_softmax(guided, dim=-1)  # [b, L, V]
            top = lp.topk(self.k, dim=-1)
            self.idx[ids[miss]] = top.indices.to(torch.int16).cpu()
            self.logp[ids[miss]] = top.values.to(torch.float16).cpu()
            self.have[ids[miss]] = True
            self.dirty = True
        return self.idx[ids].long().to(x_BLC.device), self.logp[ids].float().to(x_BLC.device)

    def state(self):
        return dict(idx=self.idx, logp=self.logp, have=self.have, labels=self.labels, k=self.k, guided_cfg=self.guided_cfg)

    def load(self, st):
        if st["k"] != self.k or st["idx"].shape != self.idx.shape or not torch.equal(st["labels"], self.labels) or \
                st.get("guided_cfg", 0.0) != self.guided_cfg:
            return False
        self.idx, self.logp, self.have = st["idx"], st["logp"], st["have"]
        return True


def phase_loss(phase, models, quant, toks, ids, cache, begin, alpha):
    """One batch: toks [B, L] of the sequences ids [B] of `cache` (whose labels they take) ->
    (loss, ce, kl); kl is None for the drafter phase. KL(drafter || refiner) is taken over the
    drafter's top-k tokens (its probabilities renormalised there; the mass they hold is logged)."""
    drafter, refiner = models
    t = toks.long()  # [B, L]
    labels = cache.labels[ids].to(t.device)  # [B]
    x = quant.tokens_to_var_input(split_scales(t, drafter.patch_nums))  # [B, L - 1, Cvae]
    L = t.shape[1]
    if phase == "drafter":
        logits = forward_prefix(drafter, labels, x, begin)  # [B, begin, V]
        ce = F.cross_entropy(logits.transpose(1, 2), t[:, :begin])
        return ce, ce, None
    lo = 0 if phase == "distill" else begin
    t_idx, t_logp = cache.get(drafter, ids, x)  # [B, L, k] each
    t_idx, t_logp = t_idx[:, lo:], t_logp[:, lo:]
    p = F.softmax(t_logp, dim=-1)  # [B, L - lo, k] renormalised on the top k
    # CE on the conditional logits, KL on the guided ones (the same without guidance)
    logits, guided = (y[:, lo:] for y in cond_and_guided(refiner, labels, x, L, cache.guided_cfg,
                                                         cache.num_classes))  # [B, L - lo, V] each
    ce = F.cross_entropy(logits.transpose(1, 2), t[:, lo:])
    s_logp = F.log_softmax(guided, dim=-1).gather(-1, t_idx)  # [B, L - lo, k]
    kl = (p * (F.log_softmax(t_logp, dim=-1) - s_logp)).sum(-1).mean()
    return (1 - alpha) * ce + alpha * kl, ce, kl


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--draft-steps", type=int, required=True, help="N: the drafter draws scales 1..N")
    ap.add_argument("--vae", default=os.path.join(MODELS_DIR, "fashion_vae.pth"))
    ap.add_argument("--drafter", default=os.path.join(MODELS_DIR, "fashion_drafter.pth"))
    ap.add_argument("--refiner", default=os.path.join(MODELS_DIR, "fashion_refiner.pth"))
    ap.add_argument("--refiner-depth", type=int, default=None,
                    help="grow the refiner to this many blocks first (new blocks start as near-identity)")
    ap.add_argument("--tokens", default=None, help="tokens file (tokenize_data.py format); default: tokenize here")
    ap.add_argument("--train-images", type=int, default=24000, help="without --tokens: training images to tokenize")
    ap.add_argument("--val-images", type=int, default=1000, help="without --tokens: test images to tokenize")
    ap.add_argument("--tokens-cache", default=os.path.join(WORK_DIR, "tokens_subset"),
                    help="without --tokens: where the tokenized chunks are kept (shared by runs for every N)")
    ap.add_argument("--work-dir", default=None, help="checkpoint and logs (default $VARCODE_TRAIN_DIR/code_n<N>)")
    ap.add_argument("--out-dir", default=MODELS_DIR)
    ap.add_argument("--prefix", default="fashion_",
                    help="exports: <out-dir>/<prefix>drafter_<N>.pth, <out-dir>/<prefix>refiner_<N>.pth")
    ap.add_argument("--distill-steps", type=int, default=300)
    ap.add_argument("--special-steps", type=int, default=900)
    ap.add_argument("--drafter-steps", type=int, default=200)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--lr-refiner", type=float, default=5e-4)
    ap.add_argument("--lr-drafter", type=float, default=1e-4)
    ap.add_argument("--alpha", type=float, default=0.7, help="weight of the distillation term (KL) vs CE")
    ap.add_argument("--cond-drop", type=float, default=0.1,
                    help="share of sequences trained with the unconditional class (CFG's other branch)")
    ap.add_argument("--guided-cfg", type=float, default=0.0,
                    help="distil the classifier-free guided distribution generation samples from (CFG strength, "
                         "e.g. 1.5; every sequence keeps its class) instead of the conditional one")
    ap.add_argument("--teacher-topk", type=int, default=64, help="drafter tokens kept per position for the KL")
    ap.add_argument("--teacher-cache", default=None,
                    help="file of the teacher cache (default <work-dir>/teacher_cache.pt); runs for several N with "
                         "the same drafter, tokens and seed can share one (one run at a time)")
    ap.add_argument("--val-every", type=int, default=100)
    ap.add_argument("--val-seqs", type=int, default=1000)
    ap.add_argument("--time-budget", type=float, default=None,
                    help="seconds of training in this invocation; then checkpoint, export the best so far, exit")
    ap.add_argument("--ckpt-every", type=float, default=120.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export-only", action="store_true", help="export the best weights of the checkpoint and exit")
    args = ap.parse_args()
    setup_torch(args.threads, args.seed)
    dev = pick_device()
    N = args.draft_steps
    work = args.work_dir or os.path.join(WORK_DIR, f"code_n{N}")
    ck_path = os.path.join(work, "ckpt.pt")

    if args.guided_cfg < 0:
        sys.exit(f"--guided-cfg: expected a CFG strength >= 0 (0 = off), got {args.guided_cfg}")
    drafter, refiner = load_var(args.drafter).to(dev), load_var(args.refiner).to(dev)
    if args.refiner_depth is not None:
        if args.refiner_depth < refiner.depth:
            sys.exit(f"--refiner-depth: {args.refiner} has {refiner.depth} blocks and can only grow, "
                     f"got {args.refiner_depth}")
        refiner = grow_depth(refiner, args.refiner_depth)
    if drafter.patch_nums != refiner.patch_nums or drafter.V != refiner.V or drafter.Cvae != refiner.Cvae:
        sys.exit(f"{args.drafter} and {args.refiner} do not share scales / vocabulary / Cvae")
    SN = len(drafter.patch_nums)
    if not 1 <= N <= SN - 1:
        sys.exit(f"--draft-steps: expected 1..{SN - 1} for {SN} scales, got {N}")
    vsd, vcfg = load_vae(args.vae)
    vae = build_vae(vsd, vcfg, drafter.patch_nums).to(dev)
    if vae.quantize.vocab != drafter.V or vae.quantize.cvae != drafter.Cvae:
        sys.exit(f"{args.vae}: vocabulary / Cvae do not match the drafter's")
    os.makedirs(work, exist_ok=True)  # only once the arguments hold: a refused run leaves nothing
    quant = vae.quantize
    begin = drafter.begin_ends[N][0]  # first position the refiner draws
    for m in (drafter, refiner):
        m.cond_drop_rate = 0.0  # dropped by hand: teacher and student see the same labels

    steps = dict(distill=args.distill_steps, special=args.special_steps, drafter=args.drafter_steps)
    lrs = dict(distill=args.lr_refiner, special=args.lr_refiner, drafter=args.lr_drafter)

    def make_opt(phase):
        m = drafter if phase == "drafter" else refiner
        return torch.optim.AdamW(m.parameters(), lr=lrs[phase], betas=(0.9, 0.95), weight_decay=0.05)

    def cpu_state(m):
        return {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}

    state = dict(phase_i=0, step=0, best=dict(refiner=cpu_state(refiner), drafter=cpu_state(drafter)),
                 best_val={}, wall=0.0, cpu=0.0, cfg=vars(args))
    ck = load_ckpt(ck_path)
    opt = None
    if ck is not None:
        state = ck
        refiner.load_state_dict(ck["refiner"])
        drafter.load_state_dict(ck["drafter"])
        print(f"resumed: phase {PHASES[min(ck['phase_i'], 2)]} step {ck['step']}", flush=True)
    timer = Timer(state["wall"], state["cpu"])

    def save(opt):
        if cache_tr is not None and cache_tr.dirty:
            save_ckpt(cache_path, cache_tr.state())
            cache_tr.dirty = False
        state.update(refiner=cpu_state(refiner), drafter=cpu_state(drafter), wall=timer.wall(), cpu=timer.cpu(),
                     opt=opt.state_dict() if opt is not None else None)
        save_ckpt(ck_path, state)

    def export(quiet=False):
        paths = []
        for role, sd in (("drafter", state["best"]["drafter"]), ("refiner", state["best"]["refiner"])):
            p = os.path.join(args.out_dir, f"{args.prefix}{role}_{N}.pth")
            export_state_dict(sd, p)
            paths.append(p)
        res = dict(draft_steps=N, phase=PHASES[min(state["phase_i"], 2)], done=state["phase_i"] >= len(PHASES),
                   step=state["step"], best_val=state["best_val"], wall_s=timer.wall(), cpu_s=timer.cpu(),
                   device=str(dev), refiner_params=sum(p.numel() for p in refiner.parameters()),
                   settings={k: v for k, v in vars(args).items() if k not in ("export_only",)}, exported=paths)
        with open(os.path.join(work, "final.json"), "w") as f:
            json.dump(res, f, indent=1)
        if not quiet:
            print("exported", *paths, flush=True)

    if args.export_only:
        export()
        return
    cache_tr = None

    if args.tokens:
        data = torch.load(args.tokens)
    else:
        data = tokenize_subset(vae, args.tokens_cache, args.train_images, args.val_images)
    tr, ytr, te, yte = (data[k].to(dev) for k in ("train", "train_labels", "test", "test_labels"))
    if tr.shape[1] != drafter.L:
        sys.exit(f"tokens: {tr.shape[1]} per sequence, the models have L = {drafter.L}")
    te, yte = te[:args.val_seqs], yte[:args.val_seqs]
    L = drafter.L
    cache_tr = TeacherCache(len(tr), L, args.teacher_topk, ytr, drafter.num_classes, args.cond_drop, args.seed,
                            args.guided_cfg)
    cache_te = TeacherCache(len(te), L, args.teacher_topk, yte, drafter.num_classes, args.cond_drop, args.seed + 1,
                            args.guided_cfg)
    cache_path = args.teacher_cache or os.path.join(work, "teacher_cache.pt")
    if os.path.exists(cache_path) and cache_tr.load(torch.load(cache_path)):
        print(f"teacher cache: {int(cache_tr.have.sum())} of {len(tr)} sequences", flush=True)
    print(f"N={N}: refiner from position {begin} of {drafter.L}; train {len(tr)} / val {len(te)} sequences; "
          f"refiner {sum(p.numel() for p in refiner.parameters())} params; device {dev}; steps {steps}", flush=True)
    log = CsvLog(os.path.join(work, "log.csv"), ["phase", "step", "loss", "ce", "kl", "lr", "wall_s", "cpu_s"])
    vlog = CsvLog(os.path.join(work, "val.csv"), ["phase", "step", "val_loss", "val_ce", "val_kl", "wall_s"])

    @torch.no_grad()
    def validate(phase, bs=100):
        for m in (drafter, refiner):
            m.eval()
        tot = np.zeros(3)
        for i in range(0, len(te), bs):
            ids = torch.arange(i, min(len(te), i + bs))
            loss, ce, kl = phase_loss(phase, (drafter, refiner), quant, te[ids.to(dev)], ids, cache_te, begin,
                                      args.alpha)
            n = len(ids)
            tot += np.array([loss.item(), ce.item(), kl.item() if kl is not None else 0.0]) * n
        return tot / len(te)

    started = time.time()
    last_ck = time.time()
    stop = False
    term = []  # SIGTERM / SIGINT: finish the step, checkpoint, export, exit (a kill loses nothing)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: term.append(1))
    while state["phase_i"] < len(PHASES) and not stop:
        phase = PHASES[state["phase_i"]]
        total = steps[phase]
        model = drafter if phase == "drafter" else refiner
        role = "drafter" if phase == "drafter" else "refiner"
        if state["step"] == 0 and total > 0:
            v = validate(phase)
            vlog.log(phase=phase, step=0, val_loss=v[0], val_ce=v[1], val_kl=v[2], wall_s=round(timer.wall()))
            state["best_val"][phase] = dict(step=0, val_loss=float(v[0]), val_ce=float(v[1]), val_kl=float(v[2]))
        if opt is None:
            opt = make_opt(phase)
            if ck is not None and ck.get("opt") is not None and ck["phase_i"] == state["phase_i"] and state["step"] > 0:
                opt.load_state_dict(ck["opt"])
            ck = None
        drafter.eval()  # the teacher (and, in the drafter phase, dropout-free anyway)
        model.train()
        rng = np.random.default_rng(args.seed + 7919 * state["step"] + 104729 * state["phase_i"])
        while state["step"] < total:
            if term or args.time_budget is not None and time.time() - started > args.time_budget:
                stop = True
                break
            s = state["step"]
            lr = lrs[phase] * min(1.0, (s + 1) / 20) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / total)))
            for g in opt.param_groups:
                g["lr"] = lr
            ids = torch.from_numpy(rng.integers(0, len(tr), args.bs))
            loss, ce, kl = phase_loss(phase, (drafter, refiner), quant, tr[ids.to(dev)], ids, cache_tr, begin,
                                      args.alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
            opt.step()
            state["step"] = s = s + 1
            if s % 10 == 0 or s == total:
                log.log(phase=phase, step=s, loss=loss.item(), ce=ce.item(), kl=kl.item() if kl is not None else "",
                        lr=lr, wall_s=round(timer.wall()), cpu_s=round(timer.cpu()))
            if s % args.val_every == 0 or s == total:
                v = validate(phase)
                model.train()
                vlog.log(phase=phase, step=s, val_loss=v[0], val_ce=v[1], val_kl=v[2], wall_s=round(timer.wall()))
                if v[0] < state["best_val"][phase]["val_loss"]:
                    state["best_val"][phase] = dict(step=s, val_loss=float(v[0]), val_ce=float(v[1]),
                                                    val_kl=float(v[2]))
                    state["best"][role] = cpu_state(model)
                    export(quiet=True)  # the best so far is always usable while the run goes on
            if time.time() - last_ck > args.ckpt_every:
                save(opt)
                last_ck = time.time()
        if not stop:
            # the next phase starts from this phase's best weights
            model.load_state_dict(state["best"][role])
            if phase == "distill" and total > 0:  # reusable for another N: --refiner it --distill-steps 0
                export_state_dict(state["best"][role], os.path.join(work, "refiner_distilled.pth"))
            state["phase_i"] += 1
            state["step"] = 0
            opt = None
    save(opt)
    export()
    if state["phase_i"] >= len(PHASES):
        open(os.path.join(work, "DONE"), "w").write("ok")
    else:
        why = "signal" if term else "--time-budget"
        print(f"stopped ({why}) in phase {PHASES[state['phase_i']]} at step {state['step']}; "
              "run the same command again to resume", flush=True)


if __name__ == "__main__":
    main()
