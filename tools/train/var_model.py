"""VAR transformer of the official block design (spec section 3), written from the spec.

state_dict() keys/order: pos_start, pos_1LC, lvl_1L (buffer), attn_bias_for_masking (buffer),
word_embed.*, class_emb.weight, lvl_embed.weight, blocks.i.attn.{scale_mul_1H11, q_bias, v_bias,
zero_k_bias (buffer), mat_qkv.weight, proj.*}, blocks.i.ffn.{fc1,fc2}.*, blocks.i.ada_lin.1.*,
head_nm.ada_lin.1.*, head.* -- as the official checkpoints and shared/fixtures/tiny/*.pth.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_SCALE_MUL = math.log(100.0)


class SelfAttention(nn.Module):
    def __init__(self, C, num_heads):
        super().__init__()
        assert C == 64 * num_heads, "head dim must be 64"
        self.C, self.H = C, num_heads
        self.scale_mul_1H11 = nn.Parameter(torch.full((1, num_heads, 1, 1), 4.0).log())
        self.q_bias = nn.Parameter(torch.zeros(C))
        self.v_bias = nn.Parameter(torch.zeros(C))
        self.register_buffer("zero_k_bias", torch.zeros(C))
        self.mat_qkv = nn.Linear(C, 3 * C, bias=False)
        self.proj = nn.Linear(C, C)
        self.kv_cache = None  # (k, v) [B, H, l, 64] during generation

    def qkv(self, x):
        B, l, C = x.shape
        bias = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        q, k, v = F.linear(x, self.mat_qkv.weight, bias).view(B, l, 3, self.H, 64).permute(2, 0, 3, 1, 4).unbind(0)
        q = F.normalize(q, dim=-1).mul(self.scale_mul_1H11.clamp_max(MAX_SCALE_MUL).exp())
        k = F.normalize(k, dim=-1)
        return q, k, v

    def forward(self, x, attn_bias=None, use_cache=False):
        B, l, C = x.shape
        q, k, v = self.qkv(x)
        if use_cache:
            if self.kv_cache is not None:
                k = torch.cat((self.kv_cache[0], k), dim=2)
                v = torch.cat((self.kv_cache[1], v), dim=2)
            self.kv_cache = (k, v)
        a = q @ k.transpose(-2, -1)  # scale factor 1: the l2 norm replaces 1/sqrt(d)
        if attn_bias is not None:
            a = a + attn_bias
        o = a.softmax(dim=-1) @ v  # [B, H, l, 64]
        return self.proj(o.transpose(1, 2).reshape(B, l, C))


class FFN(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.fc1 = nn.Linear(C, 4 * C)
        self.fc2 = nn.Linear(4 * C, C)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class AdaLNBlock(nn.Module):
    def __init__(self, C, num_heads):
        super().__init__()
        self.C = C
        self.attn = SelfAttention(C, num_heads)
        self.ffn = FFN(C)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 6 * C))

    def forward(self, x, cond_BD, attn_bias=None, use_cache=False):
        g1, g2, s1, s2, b1, b2 = self.ada_lin(cond_BD).view(-1, 1, 6, self.C).unbind(2)
        x = x + g1 * self.attn(F.layer_norm(x, (self.C,), eps=1e-6) * (1 + s1) + b1, attn_bias, use_cache)
        x = x + g2 * self.ffn(F.layer_norm(x, (self.C,), eps=1e-6) * (1 + s2) + b2)
        return x


class AdaLNBeforeHead(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.C = C
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 2 * C))

    def forward(self, x, cond_BD):
        scale, shift = self.ada_lin(cond_BD).view(-1, 1, 2, self.C).unbind(2)
        return F.layer_norm(x, (self.C,), eps=1e-6) * (1 + scale) + shift


class VAR(nn.Module):
    def __init__(self, depth, width, vocab, cvae, num_classes=10, patch_nums=(1, 2, 3, 4, 6, 8),
                 cond_drop_rate=0.1):
        super().__init__()
        C = width
        self.C, self.depth, self.V, self.Cvae = C, depth, vocab, cvae
        self.num_classes, self.cond_drop_rate = num_classes, cond_drop_rate
        self.patch_nums = tuple(patch_nums)
        self.L = sum(pn * pn for pn in self.patch_nums)
        self.begin_ends = []
        cur = 0
        for pn in self.patch_nums:
            self.begin_ends.append((cur, cur + pn * pn))
            cur += pn * pn
        init_std = math.sqrt(1 / C / 3)

        self.pos_start = nn.Parameter(torch.empty(1, 1, C))
        self.pos_1LC = nn.Parameter(torch.empty(1, self.L, C))
        lvl = torch.cat([torch.full((pn * pn,), i, dtype=torch.int64) for i, pn in enumerate(self.patch_nums)])
        lvl_1L = lvl.view(1, self.L)
        self.register_buffer("lvl_1L", lvl_1L)
        d, dT = lvl_1L.view(1, self.L, 1), lvl_1L.view(1, 1, self.L)
        self.register_buffer("attn_bias_for_masking",
                             torch.where(d >= dT, 0.0, -torch.inf).reshape(1, 1, self.L, self.L).float())
        self.word_embed = nn.Linear(cvae, C)
        self.class_emb = nn.Embedding(num_classes + 1, C)
        self.lvl_embed = nn.Embedding(len(self.patch_nums), C)
        self.blocks = nn.ModuleList([AdaLNBlock(C, C // 64) for _ in range(depth)])
        self.head_nm = AdaLNBeforeHead(C)
        self.head = nn.Linear(C, vocab)
        self._init_weights(init_std)

    def _init_weights(self, std, init_head=0.02, init_adaln=0.5, init_adaln_gamma=1e-5):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.trunc_normal_(m.weight, std=std)
        for p in (self.pos_start, self.pos_1LC):
            nn.init.trunc_normal_(p, std=std)
        with torch.no_grad():
            self.head.weight.mul_(init_head)
            self.head_nm.ada_lin[1].weight.mul_(init_adaln)
            C = self.C
            for b in self.blocks:
                b.attn.proj.weight.div_(math.sqrt(2 * self.depth))
                b.ffn.fc2.weight.div_(math.sqrt(2 * self.depth))
                b.ada_lin[1].weight[2 * C:].mul_(init_adaln)
                b.ada_lin[1].weight[:2 * C].mul_(init_adaln_gamma)

    def lvl_pos(self):
        return self.lvl_embed(self.lvl_1L[0]).unsqueeze(0) + self.pos_1LC  # [1, L, C]

    def forward(self, label_B, x_BLCv_wo_first):
        """Teacher forcing: label_B [B] (class dropout applied here in training), inputs of scales
        1..SN-1 as [B, L-1, Cvae] -> logits [B, L, V]."""
        B = label_B.shape[0]
        if self.training and self.cond_drop_rate > 0:
            drop = torch.rand(B, device=label_B.device) < self.cond_drop_rate
            label_B = torch.where(drop, torch.full_like(label_B, self.num_classes), label_B)
        cond = self.class_emb(label_B)
        sos = cond.unsqueeze(1) + self.pos_start.expand(B, 1, -1)
        x = torch.cat((sos, self.word_embed(x_BLCv_wo_first.float())), dim=1) + self.lvl_pos()
        bias = self.attn_bias_for_masking
        for b in self.blocks:
            x = b(x, cond, bias)
        return self.head(self.head_nm(x.float(), cond).float()).float()

    # -------------------------------------------------------------- generation helpers (spec 5)
    def reset_cache(self):
        for b in self.blocks:
            b.attn.kv_cache = None

    def step(self, x_BlC, cond_BD):
        """Run one scale's input embeddings through all blocks with the KV cache -> logits."""
        for b in self.blocks:
            x_BlC = b(x_BlC, cond_BD, None, use_cache=True)
        return self.head(self.head_nm(x_BlC, cond_BD))
