#include "model/quantizer.hpp"

#include <cmath>
#include <cstring>

#include "kernels/cpu/resample.hpp"

namespace varcode::model {

namespace {

// [B, C, h, w] -> [B, h*w, C]
Tensor to_token_major(const Tensor& x) {
  const int64_t B = x.dim(0), C = x.dim(1), L = x.dim(2) * x.dim(3);
  Tensor y = Tensor::empty(DType::f32, {B, L, C});  // [B, L, C]
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t l = 0; l < L; ++l) yp[(b * L + l) * C + c] = xp[(b * C + c) * L + l];
  return y;
}

// [B, pn*pn, C] -> [B, C, pn, pn]
Tensor to_channel_major(const Tensor& x, int pn) {
  const int64_t B = x.dim(0), L = x.dim(1), C = x.dim(2);
  Tensor y = Tensor::empty(DType::f32, {B, C, pn, pn});  // [B, C, pn, pn]
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t c = 0; c < C; ++c) yp[(b * C + c) * L + l] = xp[(b * L + l) * C + c];
  return y;
}

int64_t total_tokens(const std::vector<int>& patch_nums) {
  int64_t L = 0;
  for (int pn : patch_nums) L += static_cast<int64_t>(pn) * pn;
  return L;
}

}  // namespace

Quantizer Quantizer::load(WeightSource& ws, const VaeConfig& cfg) {
  Quantizer q;
  q.vocab_ = cfg.vocab;
  q.cvae_ = cfg.z_channels;
  q.embedding_ = ws.take("quantize.embedding.weight", {cfg.vocab, cfg.z_channels});
  // A training statistic whose first dimension need not match any schedule.
  ws.ignore("quantize.ema_vocab_hit_SV");
  for (int k = 0; k < kNumPhi; ++k) {
    const std::string prefix = "quantize.quant_resi.qresi_ls." + std::to_string(k) + ".";
    q.phi_convs_.emplace_back(ws.take(prefix + "weight", {q.cvae_, q.cvae_, 3, 3}), ws.take(prefix + "bias", {q.cvae_}),
                              kernels::cpu::Conv2dGeometry::same(3));
  }
  const float* e = q.embedding_.data<float>();
  q.emb_f64_.assign(e, e + q.embedding_.numel());
  q.emb_sq_.assign(static_cast<size_t>(q.vocab_), 0.0);
  for (int64_t v = 0; v < q.vocab_; ++v)
    for (int64_t c = 0; c < q.cvae_; ++c)
      q.emb_sq_[static_cast<size_t>(v)] +=
          q.emb_f64_[static_cast<size_t>(v * q.cvae_ + c)] * q.emb_f64_[static_cast<size_t>(v * q.cvae_ + c)];
  return q;
}

std::vector<int> Quantizer::phi_table(int num_scales) {
  if (num_scales <= 0) throw Error("quantizer: a schedule needs at least one scale");
  // np.linspace(1/3/K, 1 - 1/3/K, K) for K = 4: start + i * step, the last tick set to stop.
  const double start = 1.0 / 3.0 / kNumPhi, stop = 1.0 - 1.0 / 3.0 / kNumPhi;
  const double step = (stop - start) / (kNumPhi - 1);
  double ticks[kNumPhi];
  for (int i = 0; i < kNumPhi; ++i) ticks[i] = static_cast<double>(i) * step + start;
  ticks[kNumPhi - 1] = stop;
  std::vector<int> table(static_cast<size_t>(num_scales));
  for (int si = 0; si < num_scales; ++si) {
    const double at = num_scales == 1 ? 0.0 : static_cast<double>(si) / static_cast<double>(num_scales - 1);
    int best = 0;
    for (int k = 1; k < kNumPhi; ++k)  // np.argmin: first of equal distances
      if (std::fabs(ticks[k] - at) < std::fabs(ticks[best] - at)) best = k;
    table[static_cast<size_t>(si)] = best;
  }
  return table;
}

void Quantizer::check_schedule(const std::vector<int>& patch_nums) const {
  if (patch_nums.empty()) throw Error("quantizer: empty scale schedule");
  for (size_t i = 0; i < patch_nums.size(); ++i)
    if (patch_nums[i] <= 0 || (i > 0 && patch_nums[i] < patch_nums[i - 1]))
      throw Error("quantizer: scale schedule must be positive and non-decreasing");
}

void Quantizer::check_fhat(const Tensor& f_hat, const std::vector<int>& patch_nums, const char* what) const {
  const int P = patch_nums.back();
  if (f_hat.dtype() != DType::f32 || f_hat.ndim() != 4 || f_hat.dim(1) != cvae_ || f_hat.dim(2) != P ||
      f_hat.dim(3) != P)
    throw Error(std::string(what) + ": f_hat must be f32 [B, " + std::to_string(cvae_) + ", " + std::to_string(P) +
                ", " + std::to_string(P) + "], got " + shape_str(f_hat.shape()));
}

Tensor Quantizer::phi(int k, const Tensor& h) const {
  if (k < 0 || k >= kNumPhi) throw Error("quantizer: Phi index " + std::to_string(k) + " out of range");
  Tensor y = phi_convs_[static_cast<size_t>(k)].forward(h);  // [B, Cvae, H, W]
  const float* hp = h.data<float>();
  float* yp = y.data<float>();
  const int64_t n = y.numel();
  // The reference's order: h * (1 - 0.5) + conv(h) * 0.5.
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) yp[i] = hp[i] * 0.5f + yp[i] * 0.5f;
  return y;
}

Tensor Quantizer::embed(const Tensor& idx_Bl) const {
  if (idx_Bl.dtype() != DType::i64 || idx_Bl.ndim() != 2)
    throw Error("quantizer: token indices must be int64 [B, l], got " + std::string(dtype_name(idx_Bl.dtype())) + " " +
                shape_str(idx_Bl.shape()));
  const int64_t B = idx_Bl.dim(0), l = idx_Bl.dim(1);
  Tensor h = Tensor::empty(DType::f32, {B, l, cvae_});  // [B, l, Cvae]
  const int64_t* idx = idx_Bl.data<int64_t>();
  const float* e = embedding_.data<float>();
  for (int64_t i = 0; i < B * l; ++i) {
    if (idx[i] < 0 || idx[i] >= vocab_)
      throw Error("token " + std::to_string(idx[i]) + " at position " + std::to_string(i % l) + " of row " +
                  std::to_string(i / l) + " is outside the codebook [0, " + std::to_string(vocab_) + ")");
    std::memcpy(h.data<float>() + i * cvae_, e + idx[i] * cvae_, sizeof(float) * static_cast<size_t>(cvae_));
  }
  return h;
}

void Quantizer::add_scale(int si, const std::vector<int>& patch_nums, const Tensor& h_BlC, Tensor& f_hat) const {
  check_schedule(patch_nums);
  const int SN = static_cast<int>(patch_nums.size());
  if (si < 0 || si >= SN) throw Error("quantizer: scale " + std::to_string(si) + " outside the schedule");
  check_fhat(f_hat, patch_nums, "add_scale");
  const int pn = patch_nums[static_cast<size_t>(si)], P = patch_nums.back();
  if (h_BlC.dtype() != DType::f32 || h_BlC.shape() != Shape{f_hat.dim(0), static_cast<int64_t>(pn) * pn, cvae_})
    throw Error("add_scale: scale " + std::to_string(si) + " embedding must be f32 " +
                shape_str({f_hat.dim(0), static_cast<int64_t>(pn) * pn, cvae_}) + ", got " + shape_str(h_BlC.shape()));
  Tensor h = to_channel_major(h_BlC, pn);                  // [B, Cvae, pn, pn]
  if (si < SN - 1) h = kernels::cpu::bicubic_up(h, P, P);  // [B, Cvae, P, P]
  h = phi(phi_table(SN)[static_cast<size_t>(si)], h);      // [B, Cvae, P, P]
  float* f = f_hat.data<float>();
  const float* hp = h.data<float>();
  for (int64_t i = 0; i < f_hat.numel(); ++i) f[i] += hp[i];
}

void Quantizer::add_scale_tokens(int si, const std::vector<int>& patch_nums, const Tensor& idx_Bl,
                                 Tensor& f_hat) const {
  add_scale(si, patch_nums, embed(idx_Bl), f_hat);
}

Tensor Quantizer::next_input(int si, const std::vector<int>& patch_nums, const Tensor& f_hat) const {
  check_schedule(patch_nums);
  const int SN = static_cast<int>(patch_nums.size());
  if (si < 0 || si >= SN - 1)
    throw Error("next_input: scale " + std::to_string(si) + " has no next scale in a schedule of " +
                std::to_string(SN));
  check_fhat(f_hat, patch_nums, "next_input");
  const int pn = patch_nums[static_cast<size_t>(si + 1)];
  return to_token_major(kernels::cpu::area_down(f_hat, pn, pn));  // [B, pn^2, Cvae]
}

Tensor Quantizer::tokens_to_fhat(const Tensor& tokens_BL, const std::vector<int>& patch_nums) const {
  check_schedule(patch_nums);
  const int64_t L = total_tokens(patch_nums);
  if (tokens_BL.dtype() != DType::i64 || tokens_BL.ndim() != 2 || tokens_BL.dim(1) != L)
    throw Error("tokens must be int64 [B, " + std::to_string(L) + "], got " +
                std::string(dtype_name(tokens_BL.dtype())) + " " + shape_str(tokens_BL.shape()));
  const int64_t B = tokens_BL.dim(0);
  const int P = patch_nums.back();
  Tensor h_all = embed(tokens_BL);                             // [B, L, Cvae], validates every token
  Tensor f_hat = Tensor::zeros(DType::f32, {B, cvae_, P, P});  // [B, Cvae, P, P]
  int64_t begin = 0;
  for (int si = 0; si < static_cast<int>(patch_nums.size()); ++si) {
    const int64_t n = static_cast<int64_t>(patch_nums[static_cast<size_t>(si)]) * patch_nums[static_cast<size_t>(si)];
    Tensor h = Tensor::empty(DType::f32, {B, n, cvae_});  // [B, pn^2, Cvae]
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(h.data<float>() + b * n * cvae_, h_all.data<float>() + (b * L + begin) * cvae_,
                  sizeof(float) * static_cast<size_t>(n * cvae_));
    add_scale(si, patch_nums, h, f_hat);
    begin += n;
  }
  return f_hat;
}

Quantizer::Quantized Quantizer::quantize(const Tensor& f, const std::vector<int>& patch_nums) const {
  check_schedule(patch_nums);
  check_fhat(f, patch_nums, "quantize");
  const int SN = static_cast<int>(patch_nums.size()), P = patch_nums.back();
  const int64_t B = f.dim(0), L = total_tokens(patch_nums), C = cvae_;
  const std::vector<int> phis = phi_table(SN);
  Quantized out;
  out.tokens = Tensor::empty(DType::i64, {B, L});       // [B, L]
  out.f_hat = Tensor::zeros(DType::f32, {B, C, P, P});  // [B, Cvae, P, P]
  Tensor f_rest = f.clone();                            // [B, Cvae, P, P]
  int64_t begin = 0;
  for (int si = 0; si < SN; ++si) {
    const int pn = patch_nums[static_cast<size_t>(si)];
    const int64_t n = static_cast<int64_t>(pn) * pn;
    Tensor z = to_token_major(si < SN - 1 ? kernels::cpu::area_down(f_rest, pn, pn) : f_rest);  // [B, pn^2, Cvae]
    Tensor idx = Tensor::empty(DType::i64, {B, n});                                             // [B, pn^2]
    const float* zp = z.data<float>();
    int64_t* ip = idx.data<int64_t>();
    // argmin_v ||z - e_v||^2 = argmin_v (||e_v||^2 - 2 z.e_v), in float64 so that only genuine
    // near-ties could come out differently from the reference's float32 distances.
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < B * n; ++row) {
      std::vector<double> zd(zp + row * C, zp + (row + 1) * C);  // [Cvae]
      double best = INFINITY;
      int64_t best_v = 0;
      for (int64_t v = 0; v < vocab_; ++v) {
        const double* e = emb_f64_.data() + v * C;
        double dot = 0.0;
#pragma omp simd reduction(+ : dot)
        for (int64_t c = 0; c < C; ++c) dot += zd[static_cast<size_t>(c)] * e[c];
        const double d = emb_sq_[static_cast<size_t>(v)] - 2.0 * dot;
        if (d < best) {
          best = d;
          best_v = v;
        }
      }
      ip[row] = best_v;
    }
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(out.tokens.data<int64_t>() + b * L + begin, ip + b * n, sizeof(int64_t) * static_cast<size_t>(n));
    Tensor h = to_channel_major(embed(idx), pn);             // [B, Cvae, pn, pn]
    if (si < SN - 1) h = kernels::cpu::bicubic_up(h, P, P);  // [B, Cvae, P, P]
    h = phi(phis[static_cast<size_t>(si)], h);               // [B, Cvae, P, P]
    float* fh = out.f_hat.data<float>();
    float* fr = f_rest.data<float>();
    const float* hp = h.data<float>();
    for (int64_t i = 0; i < out.f_hat.numel(); ++i) {
      fh[i] += hp[i];
      fr[i] -= hp[i];
    }
    out.f_hat_per_scale.push_back(out.f_hat.clone());
    begin += n;
  }
  return out;
}

}  // namespace varcode::model
