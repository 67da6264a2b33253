#include "model/quantizer.hpp"

#include <cmath>
#include <cstring>

namespace varcode::model {

namespace {

int64_t total_tokens(const std::vector<int>& patch_nums) {
  int64_t L = 0;
  for (int pn : patch_nums) L += static_cast<int64_t>(pn) * pn;
  return L;
}

}  // namespace

Quantizer Quantizer::load(WeightSource& ws, const VaeConfig& cfg) {
  Quantizer q;
  q.be_ = ws.backend_ptr();
  q.vocab_ = cfg.vocab;
  q.cvae_ = cfg.z_channels;
  Tensor embedding = ws.take("quantize.embedding.weight", {cfg.vocab, cfg.z_channels});  // [V, Cvae]
  // A training statistic whose first dimension need not match any schedule.
  ws.ignore("quantize.ema_vocab_hit_SV");
  for (int k = 0; k < kNumPhi; ++k) {
    const std::string prefix = "quantize.quant_resi.qresi_ls." + std::to_string(k) + ".";
    q.phi_convs_.push_back(ws.conv(prefix, q.cvae_, q.cvae_, 3, backend::ConvGeometry::same(3)));
  }
  if (!ws.check_only()) q.codebook_ = q.be_->codebook_weights(embedding);
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
  Tensor y = be_->alloc(DType::f32, h.shape());  // [B, Cvae, H, W]
  be_->conv2d(*phi_convs_[static_cast<size_t>(k)], h, y, false);
  // The reference's order: h * (1 - 0.5) + conv(h) * 0.5.
  be_->axpby(0.5f, h.data<float>(), 0.5f, y.data<float>(), y.numel(), y.data<float>());
  return y;
}

void Quantizer::check_tokens(const Tensor& idx_Bl) const {
  if (idx_Bl.dtype() != DType::i64 || idx_Bl.ndim() != 2)
    throw Error("quantizer: token indices must be int64 [B, l], got " + std::string(dtype_name(idx_Bl.dtype())) + " " +
                shape_str(idx_Bl.shape()));
  if (idx_Bl.device().type == DeviceType::cuda) throw Error("internal: token ids to check must be on the host");
  const int64_t l = idx_Bl.dim(1);
  const int64_t* idx = idx_Bl.data<int64_t>();
  for (int64_t i = 0; i < idx_Bl.numel(); ++i)
    if (idx[i] < 0 || idx[i] >= vocab_)
      throw Error("token " + std::to_string(idx[i]) + " at position " + std::to_string(i % l) + " of row " +
                  std::to_string(i / l) + " is outside the codebook [0, " + std::to_string(vocab_) + ")");
}

Tensor Quantizer::embed(const Tensor& idx_Bl) const {
  check_tokens(idx_Bl);
  const int64_t B = idx_Bl.dim(0), l = idx_Bl.dim(1);
  Tensor idx = be_->to_device(idx_Bl);               // [B, l]
  Tensor h = be_->alloc(DType::f32, {B, l, cvae_});  // [B, l, Cvae]
  be_->embed_tokens(*codebook_, idx.data<int64_t>(), B * l, h.data<float>());
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
  const int64_t B = f_hat.dim(0);
  Tensor h = be_->alloc(DType::f32, {B, cvae_, pn, pn});  // [B, Cvae, pn, pn]
  be_->to_channel_major(h_BlC, h);
  if (si < SN - 1) {
    Tensor up = be_->alloc(DType::f32, {B, cvae_, P, P});  // [B, Cvae, P, P]
    be_->bicubic_resize(h, up);
    h = up;
  }
  h = phi(phi_table(SN)[static_cast<size_t>(si)], h);  // [B, Cvae, P, P]
  be_->axpby(1.0f, f_hat.data<float>(), 1.0f, h.data<float>(), f_hat.numel(), f_hat.data<float>());
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
  const int64_t B = f_hat.dim(0);
  Tensor down = be_->alloc(DType::f32, {B, cvae_, pn, pn});  // [B, Cvae, pn, pn]
  be_->area_resize(f_hat, down);
  Tensor out = be_->alloc(DType::f32, {B, static_cast<int64_t>(pn) * pn, cvae_});  // [B, pn^2, Cvae]
  be_->to_token_major(down, out);
  return out;
}

Tensor Quantizer::tokens_to_fhat(const Tensor& tokens_BL, const std::vector<int>& patch_nums) const {
  check_schedule(patch_nums);
  const int64_t L = total_tokens(patch_nums);
  if (tokens_BL.dtype() != DType::i64 || tokens_BL.ndim() != 2 || tokens_BL.dim(1) != L)
    throw Error("tokens must be int64 [B, " + std::to_string(L) + "], got " +
                std::string(dtype_name(tokens_BL.dtype())) + " " + shape_str(tokens_BL.shape()));
  const int64_t B = tokens_BL.dim(0);
  const int P = patch_nums.back();
  Tensor h_all = embed(tokens_BL);                          // [B, L, Cvae], validates every token
  Tensor f_hat = be_->zeros(DType::f32, {B, cvae_, P, P});  // [B, Cvae, P, P]
  const int64_t f = sizeof(float);
  int64_t begin = 0;
  for (int si = 0; si < static_cast<int>(patch_nums.size()); ++si) {
    const int64_t n = static_cast<int64_t>(patch_nums[static_cast<size_t>(si)]) * patch_nums[static_cast<size_t>(si)];
    Tensor h = be_->alloc(DType::f32, {B, n, cvae_});  // [B, pn^2, Cvae]
    be_->copy_2d(h_all.data<float>() + begin * cvae_, L * cvae_ * f, h.data<float>(), n * cvae_ * f, n * cvae_ * f, B);
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
  out.tokens = be_->alloc(DType::i64, {B, L});           // [B, L]
  out.f_hat = be_->zeros(DType::f32, {B, C, P, P});      // [B, Cvae, P, P]
  Tensor f_rest = be_->alloc(DType::f32, {B, C, P, P});  // [B, Cvae, P, P]
  be_->copy_2d(f.raw(), 0, f_rest.raw(), 0, static_cast<int64_t>(f.nbytes()), 1);
  int64_t begin = 0;
  for (int si = 0; si < SN; ++si) {
    const int pn = patch_nums[static_cast<size_t>(si)];
    const int64_t n = static_cast<int64_t>(pn) * pn;
    Tensor z = be_->alloc(DType::f32, {B, n, C});  // [B, pn^2, Cvae]
    if (si < SN - 1) {
      Tensor down = be_->alloc(DType::f32, {B, C, pn, pn});  // [B, Cvae, pn, pn]
      be_->area_resize(f_rest, down);
      be_->to_token_major(down, z);
    } else {
      be_->to_token_major(f_rest, z);
    }
    Tensor idx = be_->alloc(DType::i64, {B, n});  // [B, pn^2]
    be_->nearest_code(*codebook_, z.data<float>(), B * n, idx.data<int64_t>());
    const int64_t i8 = sizeof(int64_t);
    be_->copy_2d(idx.data<int64_t>(), n * i8, out.tokens.data<int64_t>() + begin, L * i8, n * i8, B);
    Tensor e = be_->alloc(DType::f32, {B, n, C});  // [B, pn^2, Cvae]
    be_->embed_tokens(*codebook_, idx.data<int64_t>(), B * n, e.data<float>());
    Tensor h = be_->alloc(DType::f32, {B, C, pn, pn});  // [B, Cvae, pn, pn]
    be_->to_channel_major(e, h);
    if (si < SN - 1) {
      Tensor up = be_->alloc(DType::f32, {B, C, P, P});  // [B, Cvae, P, P]
      be_->bicubic_resize(h, up);
      h = up;
    }
    h = phi(phis[static_cast<size_t>(si)], h);  // [B, Cvae, P, P]
    const int64_t m = out.f_hat.numel();
    be_->axpby(1.0f, out.f_hat.data<float>(), 1.0f, h.data<float>(), m, out.f_hat.data<float>());
    be_->axpby(1.0f, f_rest.data<float>(), -1.0f, h.data<float>(), m, f_rest.data<float>());
    Tensor snapshot = be_->alloc(DType::f32, {B, C, P, P});  // [B, Cvae, P, P]
    be_->copy_2d(out.f_hat.raw(), 0, snapshot.raw(), 0, static_cast<int64_t>(out.f_hat.nbytes()), 1);
    out.f_hat_per_scale.push_back(snapshot);
    begin += n;
  }
  return out;
}

}  // namespace varcode::model
