"""Multi-scale VQ-VAE of the official VAR family (spec section 4), written from the spec.

Module and parameter names are chosen so that state_dict() has exactly the official keys:
encoder.*, decoder.*, quant_conv.*, post_quant_conv.*, quantize.embedding.weight,
quantize.quant_resi.qresi_ls.{0..3}.{weight,bias}.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import phi_table


def Norm(c):
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = Norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = Norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = Norm(c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).unbind(1)
        w = torch.softmax(torch.bmm(q.transpose(1, 2), k) * (C ** -0.5), dim=2)  # [B, HWq, HWk]
        h = torch.bmm(v, w.transpose(1, 2)).reshape(B, C, H, W)
        return x + self.proj_out(h)


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Encoder(nn.Module):
    def __init__(self, ch, ch_mult, num_res_blocks, z_channels, in_channels=3):
        super().__init__()
        n = len(ch_mult)
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        self.down = nn.ModuleList()
        block_in = ch
        for level in range(n):
            lv = nn.Module()
            lv.block, lv.attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[level]
            for _ in range(num_res_blocks):
                lv.block.append(ResnetBlock(block_in, block_out))
                block_in = block_out
                if level == n - 1:
                    lv.attn.append(AttnBlock(block_in))
            if level != n - 1:
                lv.downsample = Downsample(block_in)
            self.down.append(lv)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(block_in, block_in)
        self.norm_out = Norm(block_in)
        self.conv_out = nn.Conv2d(block_in, z_channels, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for i, lv in enumerate(self.down):
            for j, b in enumerate(lv.block):
                h = b(h)
                if len(lv.attn):
                    h = lv.attn[j](h)
            if i != len(self.down) - 1:
                h = lv.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, ch, ch_mult, num_res_blocks, z_channels, out_channels=3):
        super().__init__()
        n = len(ch_mult)
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, 1, 1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(block_in, block_in)
        ups = [None] * n
        for level in reversed(range(n)):
            lv = nn.Module()
            lv.block, lv.attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[level]
            for _ in range(num_res_blocks + 1):
                lv.block.append(ResnetBlock(block_in, block_out))
                block_in = block_out
                if level == n - 1:
                    lv.attn.append(AttnBlock(block_in))
            if level != 0:
                lv.upsample = Upsample(block_in)
            ups[level] = lv
        self.up = nn.ModuleList(ups)  # indexed by level (keys decoder.up.<level>.*)
        self.norm_out = Norm(block_in)
        self.conv_out = nn.Conv2d(block_in, out_channels, 3, 1, 1)

    def forward(self, z):
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for level in reversed(range(len(self.up))):
            lv = self.up[level]
            for j, b in enumerate(lv.block):
                h = b(h)
                if len(lv.attn):
                    h = lv.attn[j](h)
            if level != 0:
                h = lv.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Phi(nn.Conv2d):
    """Phi_k(h) = 0.5 h + 0.5 conv3x3(h); a Conv2d subclass so its keys are qresi_ls.k.{weight,bias}."""

    def __init__(self, c):
        super().__init__(c, c, 3, 1, 1)

    def forward(self, h):
        return h.mul(0.5) + super().forward(h).mul(0.5)


class PhiList(nn.Module):
    def __init__(self, c, k=4):
        super().__init__()
        self.qresi_ls = nn.ModuleList([Phi(c) for _ in range(k)])


class MultiScaleQuantizer(nn.Module):
    def __init__(self, vocab, cvae, patch_nums, beta=0.25):
        super().__init__()
        self.vocab, self.cvae, self.patch_nums, self.beta = vocab, cvae, tuple(patch_nums), beta
        # registration order = official state_dict order: ema_vocab_hit_SV, quant_resi, embedding
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(len(self.patch_nums), vocab))  # usage statistic
        self.quant_resi = PhiList(cvae, 4)
        self.embedding = nn.Embedding(vocab, cvae)
        nn.init.uniform_(self.embedding.weight, -1.0 / vocab, 1.0 / vocab)
        self.phis = phi_table(len(self.patch_nums), 4)

    def phi(self, si):
        return self.quant_resi.qresi_ls[self.phis[si]]

    def nearest(self, z_NC):
        """argmin_v ||z - e_v||^2 for rows of z [N, C]."""
        e = self.embedding.weight
        d = (z_NC.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1)[None, :]) - 2.0 * (z_NC @ e.t())
        return d.argmin(dim=1)

    def forward(self, f):
        """Training forward. f [B, C, P, P] -> (f_hat with straight-through grads, vq_loss,
        list of idx per scale [B, pn*pn], residual vectors used for code restarts)."""
        B, C, P, _ = f.shape
        SN = len(self.patch_nums)
        f_nograd = f.detach()
        f_rest = f_nograd.clone()
        f_hat = torch.zeros_like(f)
        loss = f.new_zeros(())
        idx_all, z_all = [], []
        for si, pn in enumerate(self.patch_nums):
            z = F.interpolate(f_rest, size=(pn, pn), mode="area") if si != SN - 1 else f_rest
            z_NC = z.permute(0, 2, 3, 1).reshape(-1, C)
            with torch.no_grad():
                idx = self.nearest(z_NC)
            idx_all.append(idx.view(B, pn * pn))
            z_all.append(z_NC)
            h = self.embedding(idx).view(B, pn, pn, C).permute(0, 3, 1, 2)
            if si != SN - 1:
                h = F.interpolate(h, size=(P, P), mode="bicubic", align_corners=False)
            h = self.phi(si)(h)
            f_hat = f_hat + h
            f_rest = f_rest - h.detach()
            # codebook/Phi pulled towards f, encoder committed to f_hat (per scale, as VAR does)
            loss = loss + F.mse_loss(f_hat, f_nograd) + self.beta * F.mse_loss(f_hat.detach(), f)
        loss = loss / SN
        # straight-through: the decoder's gradient flows to the encoder output f only; the codebook
        # and the Phi convs learn from the quantization loss above
        f_hat_st = f + (f_hat - f).detach() if self.training else f_hat
        return f_hat_st, loss, idx_all, z_all

    @torch.no_grad()
    def encode_tokens(self, f):
        """Inference quantization (spec 4.4): returns (list of idx [B, pn*pn], f_hat)."""
        B, C, P, _ = f.shape
        SN = len(self.patch_nums)
        f_rest, f_hat = f.clone(), torch.zeros_like(f)
        out = []
        for si, pn in enumerate(self.patch_nums):
            z = F.interpolate(f_rest, size=(pn, pn), mode="area") if si != SN - 1 else f_rest
            idx = self.nearest(z.permute(0, 2, 3, 1).reshape(-1, C)).view(B, pn * pn)
            out.append(idx)
            h = self.embedding(idx).view(B, pn, pn, C).permute(0, 3, 1, 2)
            if si != SN - 1:
                h = F.interpolate(h, size=(P, P), mode="bicubic", align_corners=False)
            h = self.phi(si)(h)
            f_hat.add_(h)
            f_rest.sub_(h)
        return out, f_hat

    @torch.no_grad()
    def tokens_to_var_input(self, idx_list):
        """Teacher-forcing inputs (spec 4.2 / 5.2): for scales 1..SN-1 the area-downsampled cumulative
        f_hat after the previous scale, as [B, L - 1, C]."""
        B = idx_list[0].shape[0]
        C, P, SN = self.cvae, self.patch_nums[-1], len(self.patch_nums)
        f_hat = torch.zeros(B, C, P, P, device=idx_list[0].device)
        outs = []
        for si in range(SN - 1):
            pn = self.patch_nums[si]
            h = self.embedding(idx_list[si]).view(B, pn, pn, C).permute(0, 3, 1, 2)
            h = F.interpolate(h, size=(P, P), mode="bicubic", align_corners=False)
            f_hat.add_(self.phi(si)(h))
            nxt = self.patch_nums[si + 1]
            outs.append(F.interpolate(f_hat, size=(nxt, nxt), mode="area").reshape(B, C, -1).transpose(1, 2))
        return torch.cat(outs, dim=1)

    @torch.no_grad()
    def add_scale(self, f_hat, si, idx):
        """f_hat += Phi(si)(up(embedding[idx])) for one scale; idx [B, pn*pn]. Returns f_hat."""
        B = idx.shape[0]
        C, P, SN, pn = self.cvae, self.patch_nums[-1], len(self.patch_nums), self.patch_nums[si]
        h = self.embedding(idx).view(B, pn, pn, C).permute(0, 3, 1, 2)
        if si != SN - 1:
            h = F.interpolate(h, size=(P, P), mode="bicubic", align_corners=False)
        return f_hat + self.phi(si)(h)


class VQVAE(nn.Module):
    def __init__(self, ch=32, ch_mult=(1, 2, 4), num_res_blocks=2, cvae=32, vocab=1024,
                 patch_nums=(1, 2, 3, 4, 6, 8), beta=0.25):
        super().__init__()
        self.encoder = Encoder(ch, ch_mult, num_res_blocks, cvae)
        self.decoder = Decoder(ch, ch_mult, num_res_blocks, cvae)
        self.quantize = MultiScaleQuantizer(vocab, cvae, patch_nums, beta)
        self.quant_conv = nn.Conv2d(cvae, cvae, 3, 1, 1)
        self.post_quant_conv = nn.Conv2d(cvae, cvae, 3, 1, 1)

    def forward(self, img):
        f = self.quant_conv(self.encoder(img))
        f_hat, vq_loss, idx, z = self.quantize(f)
        rec = self.decoder(self.post_quant_conv(f_hat))
        return rec, vq_loss, idx, z

    @torch.no_grad()
    def img_to_idx(self, img):
        return self.quantize.encode_tokens(self.quant_conv(self.encoder(img)))

    @torch.no_grad()
    def fhat_to_img(self, f_hat):
        """-> [-1, 1] (clamped), as spec 4.3."""
        return self.decoder(self.post_quant_conv(f_hat)).clamp_(-1, 1)

    def export_state_dict(self):
        return self.state_dict()
