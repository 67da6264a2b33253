// The multi-scale residual quantizer of the VQ-VAE (spec §4.1, §4.2, §4.4): the codebook, the four
// Phi residual convolutions, token maps -> latent f_hat and latent -> token maps.
//
// Scales are given by a schedule `patch_nums` (e.g. 1, 2, 3, 4, 5, 6, 8, 10, 13, 16); the latent
// side is P = patch_nums.back(). Token tensors are int64 [B, L], L = sum pn^2, scale after scale,
// row-major inside a scale.
//
// Latents, embeddings and token maps live on the backend's device; the functions that take token
// ids from a user (embed, add_scale_tokens, tokens_to_fhat) take them on the host, check them, and
// move them across once.
#pragma once
#include <vector>

#include "backend/backend.hpp"
#include "model/config.hpp"
#include "model/weights.hpp"

namespace varcode::model {

class Quantizer {
 public:
  static constexpr int kNumPhi = 4;

  // Takes `quantize.embedding.weight` and `quantize.quant_resi.qresi_ls.{0..3}.*`.
  static Quantizer load(WeightSource& ws, const VaeConfig& cfg);

  int vocab() const { return vocab_; }
  int cvae() const { return cvae_; }
  const Tensor& embedding() const { return codebook_->embedding; }  // [V, Cvae] on the device
  const backend::CodebookWeights& codebook() const { return *codebook_; }
  const backend::Backend& backend() const { return *be_; }

  // Which Phi serves each scale: nearest of linspace(1/12, 11/12, 4) to si / (SN - 1), computed in
  // float64 as the reference does (SN = 10 gives 0,0,1,1,1,2,2,3,3,3). SN = 1 uses ratio 0.
  static std::vector<int> phi_table(int num_scales);

  // Phi_k(h) = 0.5 h + 0.5 conv3x3_k(h).  h [B, Cvae, H, W] -> [B, Cvae, H, W]
  Tensor phi(int k, const Tensor& h) const;

  // Embedding lookup of token indices: idx [B, l] int64 in [0, V) on the host -> [B, l, Cvae].
  Tensor embed(const Tensor& idx_Bl) const;

  // Adds scale si to the latent in place (spec §4.2): h_BlC [B, pn^2, Cvae] is the scale's embedding
  // (hard lookup from embed(), or a soft mixture of codebook rows); f_hat [B, Cvae, P, P].
  //   f_hat += Phi(si)(bicubic_up(h, P))   (no upsampling at the last scale)
  void add_scale(int si, const std::vector<int>& patch_nums, const Tensor& h_BlC, Tensor& f_hat) const;
  // embed(idx_Bl) then add_scale. idx_Bl [B, pn^2] int64.
  void add_scale_tokens(int si, const std::vector<int>& patch_nums, const Tensor& idx_Bl, Tensor& f_hat) const;

  // The next scale's transformer input during generation: area_down(f_hat, pn_{si+1}) in token-major
  // order. f_hat [B, Cvae, P, P] -> [B, pn_{si+1}^2, Cvae]. si must be < SN - 1.
  Tensor next_input(int si, const std::vector<int>& patch_nums, const Tensor& f_hat) const;

  // All scales of a token sequence: tokens [B, L] int64 -> f_hat [B, Cvae, P, P].
  Tensor tokens_to_fhat(const Tensor& tokens_BL, const std::vector<int>& patch_nums) const;

  // Residual quantization of an encoder latent (spec §4.4).
  struct Quantized {
    Tensor tokens;                        // [B, L] int64 (on the device)
    Tensor f_hat;                         // [B, Cvae, P, P], the sum over all scales
    std::vector<Tensor> f_hat_per_scale;  // SN x [B, Cvae, P, P]: cumulative f_hat after scale si
  };
  // f [B, Cvae, P, P] -> tokens and f_hat; argmin over the codebook in float64 (ties to the lowest
  // index).
  Quantized quantize(const Tensor& f, const std::vector<int>& patch_nums) const;

 private:
  void check_schedule(const std::vector<int>& patch_nums) const;
  void check_fhat(const Tensor& f_hat, const std::vector<int>& patch_nums, const char* what) const;

  std::shared_ptr<const backend::Backend> be_;
  int vocab_ = 0, cvae_ = 0;
  std::shared_ptr<const backend::CodebookWeights> codebook_;  // [V, Cvae]
  std::vector<ConvPtr> phi_convs_;                            // kNumPhi x conv3x3 Cvae -> Cvae
  void check_tokens(const Tensor& idx) const;
};

}  // namespace varcode::model
