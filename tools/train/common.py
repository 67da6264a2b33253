"""Shared helpers for the Fashion-MNIST VAR model family: data, schedule, checkpoints, logging.

Written from docs/spec (shared/spec/model-reference.md). All training state lives under
WORK_DIR (default /root/varcode-train, override with $VARCODE_TRAIN_DIR) so that it survives
worktree changes; exported .pth files go to <repo>/models/.
"""
import csv
import gzip
import os
import struct
import time

import numpy as np
import torch

DATA_DIR = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
WORK_DIR = os.environ.get("VARCODE_TRAIN_DIR", "/root/varcode-train")
REPO_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODELS_DIR = os.environ.get("VARCODE_MODELS_DIR", os.path.join(REPO_DIR, "models"))

PATCH_NUMS = (1, 2, 3, 4, 6, 8)  # scale schedule, latent 8x8 at 32 px
NUM_CLASSES = 10
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def setup_torch(threads=2, seed=0):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)


def pick_device():
    """$VARCODE_TRAIN_DEVICE if set, else the GPU when PyTorch sees one, else the CPU. The scripts
    give the same models either way; a GPU only makes the step count of a time budget larger."""
    d = os.environ.get("VARCODE_TRAIN_DEVICE")
    dev = torch.device(d if d else ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # training only; exports are plain f32
        torch.backends.cudnn.allow_tf32 = True
    return dev


# ----------------------------------------------------------------------------- data
def _read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_u8(split):
    """Returns (images uint8 [N, 28, 28], labels int64 [N]); split 'train' or 'test'."""
    pre = "train" if split == "train" else "t10k"
    x = _read_idx(os.path.join(DATA_DIR, pre + "-images-idx3-ubyte.gz"))
    y = _read_idx(os.path.join(DATA_DIR, pre + "-labels-idx1-ubyte.gz")).astype(np.int64)
    return x, y


def to_model_images(x_u8):
    """uint8 [N, 28, 28] -> float32 [N, 3, 32, 32] in [-1, 1] (zero-pad 2 px = black, RGB replicate)."""
    x = torch.from_numpy(np.array(x_u8, dtype=np.uint8)).float().div_(127.5).sub_(1.0)
    x = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def model_images_to_gray28(img01):
    """Generated images [N, 3, 32, 32] in [0, 1] -> [N, 1, 28, 28] in [0, 1] (mean of RGB, crop centre)."""
    g = img01.float().mean(dim=1, keepdim=True)
    return g[:, :, 2:30, 2:30].contiguous()


# ----------------------------------------------------------------------------- schedule
def scale_ends(patch_nums=PATCH_NUMS):
    ends, e = [], 0
    for pn in patch_nums:
        e += pn * pn
        ends.append(e)
    return ends


def phi_table(num_scales, k=4):
    """Which of the k Phi convs serves scale si: the nearest tick of linspace(1/3/k, 1-1/3/k, k)
    to si/(SN-1), first index on ties (np.argmin in float64), as the spec (4.1) states."""
    ticks = np.linspace(1 / 3 / k, 1 - 1 / 3 / k, k)
    out = []
    for si in range(num_scales):
        at = si / (num_scales - 1) if num_scales > 1 else 0.0
        out.append(int(np.argmin(np.abs(ticks - at))))
    return out


# ----------------------------------------------------------------------------- checkpoints
def save_ckpt(path, obj):
    """Atomic save (write to tmp then rename) so that a kill never leaves a broken checkpoint."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_ckpt(path):
    if not os.path.exists(path):
        return None
    return torch.load(path, map_location="cpu")


def export_state_dict(sd, path, dtype=None):
    """torch.save of a plain OrderedDict of contiguous tensors (zip container, like the official files).
    dtype: cast floating tensors (not int64 buffers, not -inf masks) to this dtype."""
    from collections import OrderedDict
    out = OrderedDict()
    for k, v in sd.items():
        v = v.detach().cpu().contiguous().clone()
        if dtype is not None and v.is_floating_point() and k != "attn_bias_for_masking":
            v = v.to(dtype)
        out[k] = v
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(out, tmp)
    os.replace(tmp, path)


class CsvLog:
    """Appends rows to a CSV file (header written once); also prints them."""

    def __init__(self, path, fields):
        self.path, self.fields = path, list(fields)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        new = not os.path.exists(path)
        self.f = open(path, "a", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=self.fields)
        if new:
            self.w.writeheader()
            self.f.flush()

    def log(self, **row):
        self.w.writerow({k: row.get(k, "") for k in self.fields})
        self.f.flush()
        print(" ".join(f"{k}={row[k]:.5g}" if isinstance(row.get(k), float) else f"{k}={row.get(k)}"
                       for k in self.fields if k in row), flush=True)


class Timer:
    """Accumulates wall and process-CPU seconds across resumes (stored in the checkpoint)."""

    def __init__(self, wall=0.0, cpu=0.0):
        self.wall0, self.cpu0 = wall, cpu
        self.t0, self.c0 = time.time(), time.process_time()

    def wall(self):
        return self.wall0 + time.time() - self.t0

    def cpu(self):
        return self.cpu0 + time.process_time() - self.c0
