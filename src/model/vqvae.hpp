// The multi-scale VQ-VAE as one immutable loaded model: quantizer, decoder and (when the file has
// one) encoder, all taken from a checkpoint through WeightSource.
#pragma once
#include <memory>
#include <vector>

#include "io/checkpoint.hpp"
#include "model/config.hpp"
#include "model/quantizer.hpp"
#include "model/vqvae_decoder.hpp"
#include "model/vqvae_encoder.hpp"

namespace varcode::model {

class Vqvae {
 public:
  // Infers the architecture (infer_vae_config: an Error for a VAR file), takes every tensor by name
  // and shape, and rejects tensors the architecture does not have.
  // `compute` picks the decoder's arithmetic (VqvaeDecoder::load): f32 (default, reference-exact)
  // or bf16 (about twice as fast, max abs error ~1e-2 on [-1, 1] images). The encoder is f32.
  // Weights go to `be`; every tensor argument and result below lives on its device.
  static Vqvae load(const io::Checkpoint& ckpt, DType compute = DType::f32,
                    std::shared_ptr<const backend::Backend> be = backend::cpu_backend());
  const backend::Backend& backend() const { return quantizer_.backend(); }

  const VaeConfig& config() const { return config_; }
  DType compute_dtype() const { return decoder_.compute_dtype(); }
  const Quantizer& quantizer() const { return quantizer_; }
  bool has_encoder() const { return encoder_ != nullptr; }
  // Image side for a schedule: P * downsample().
  int image_size(const std::vector<int>& patch_nums) const;

  // clamp(decoder(post_quant_conv(f_hat)), -1, 1).  f_hat [B, Cvae, P, P] -> [B, 3, H, W]
  Tensor fhat_to_img(const Tensor& f_hat) const;
  // tokens [B, L] int64 -> image [B, 3, H, W] in [-1, 1] (map with (x + 1) / 2 for [0, 1]).
  Tensor tokens_to_img(const Tensor& tokens_BL, const std::vector<int>& patch_nums) const;
  // quant_conv(encoder(img)): img [B, 3, H, W] in [-1, 1] -> f [B, Cvae, H/ds, W/ds].
  Tensor img_to_latent(const Tensor& img) const;
  // img [B, 3, H, W] in [-1, 1], H = W = image_size(patch_nums) -> tokens, f_hat and the
  // cumulative f_hat after every scale (spec §4.4).
  Quantizer::Quantized img_to_tokens(const Tensor& img, const std::vector<int>& patch_nums) const;

 private:
  VaeConfig config_;
  Quantizer quantizer_;
  VqvaeDecoder decoder_;
  std::shared_ptr<const VqvaeEncoder> encoder_;
};

}  // namespace varcode::model
