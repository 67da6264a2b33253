"""The Fashion-MNIST evaluation classifier (small enough to re-implement in C++) and its file format.

Architecture (input x: [N, 1, 28, 28] grayscale in [0, 1]; first x -> (x - 0.5) / 0.5):
    conv1  3x3, 1 -> 32, stride 1, padding 1; ReLU; maxpool 2x2 stride 2      -> [N, 32, 14, 14]
    conv2  3x3, 32 -> 64, stride 1, padding 1; ReLU; maxpool 2x2 stride 2     -> [N, 64, 7, 7]
    flatten in (C, H, W) order                                                 -> [N, 3136]
    fc1    3136 -> 128; ReLU                 = the *features* used for FID     -> [N, 128]
    fc2    128 -> 10                         = class logits
Weights in PyTorch layout (conv [out, in, kh, kw], linear [out, in], y = x W^T + b).

File: models/fashion_classifier.safetensors (all F32, little-endian), tensors
conv1.weight, conv1.bias, conv2.weight, conv2.bias, fc1.weight, fc1.bias, fc2.weight, fc2.bias,
fid_ref_mu [128], fid_ref_sigma [128, 128] (feature mean / covariance, ddof 1, of the 10,000
test images), probe_input [8, 1, 28, 28], probe_features [8, 128], probe_logits [8, 10]
(the first 8 test images and what this PyTorch model computes for them: a C++ parity check).

Generated images ([N, 3, 32, 32] in [0, 1]) are mapped to the input by the mean over RGB and a
centre crop of 28x28 (rows/cols 2..29), the inverse of the training-data padding.
"""
import json
import struct
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class FashionCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1, 1)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def features(self, x01):
        x = (x01 - 0.5) / 0.5
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x01):
        return self.fc2(self.features(x01))


# ----------------------------------------------------------------------------- safetensors (no dependency)
_DT = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int64"): "I64"}
_NP = {v: k for k, v in _DT.items()}


def save_safetensors(path, tensors, metadata=None):
    header, blobs, off = OrderedDict(), [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for k, v in tensors.items():
        a = np.ascontiguousarray(v.detach().cpu().numpy() if torch.is_tensor(v) else v)
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": _DT[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = OrderedDict()
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=_NP[v["dtype"]]).reshape(v["shape"]).copy())
    return out


def load_classifier(path):
    t = load_safetensors(path)
    m = FashionCNN()
    m.load_state_dict({k: v for k, v in t.items() if k.split(".")[0] in ("conv1", "conv2", "fc1", "fc2")})
    return m.eval(), t["fid_ref_mu"].double().numpy(), t["fid_ref_sigma"].double().numpy()


# ----------------------------------------------------------------------------- FID on the features
def feature_stats(feats):
    f = np.asarray(feats, dtype=np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


def _sqrtm_psd(a):
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def fid(mu1, s1, mu2, s2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), with Tr (S1 S2)^1/2 = Tr (S1^1/2 S2 S1^1/2)^1/2."""
    r1 = _sqrtm_psd(s1)
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(r1 @ s2 @ r1), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)
