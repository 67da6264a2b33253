#include "model/vqvae.hpp"

namespace varcode::model {

Vqvae Vqvae::load(const io::Checkpoint& ckpt, DType compute, std::shared_ptr<const backend::Backend> be) {
  Vqvae m;
  m.config_ = infer_vae_config(ckpt);
  WeightSource ws(ckpt, false, std::move(be));
  m.quantizer_ = Quantizer::load(ws, m.config_);
  m.decoder_ = VqvaeDecoder::load(ws, m.config_, compute);
  if (m.config_.has_encoder) m.encoder_ = std::make_shared<const VqvaeEncoder>(VqvaeEncoder::load(ws, m.config_));
  ws.finish();
  return m;
}

int Vqvae::image_size(const std::vector<int>& patch_nums) const {
  if (patch_nums.empty()) throw Error("VQ-VAE: empty scale schedule");
  return patch_nums.back() * config_.downsample();
}

Tensor Vqvae::fhat_to_img(const Tensor& f_hat) const { return decoder_.forward(f_hat); }

Tensor Vqvae::tokens_to_img(const Tensor& tokens_BL, const std::vector<int>& patch_nums) const {
  return decoder_.forward(quantizer_.tokens_to_fhat(tokens_BL, patch_nums));  // [B, 3, H, W]
}

Tensor Vqvae::img_to_latent(const Tensor& img) const {
  if (!encoder_) throw Error("this VQ-VAE file has no encoder ('encoder.conv_in.weight' missing): cannot encode");
  return encoder_->forward(img);  // [B, Cvae, H/ds, W/ds]
}

Quantizer::Quantized Vqvae::img_to_tokens(const Tensor& img, const std::vector<int>& patch_nums) const {
  const int side = image_size(patch_nums);
  if (img.ndim() != 4 || img.dim(2) != side || img.dim(3) != side)
    throw Error("VQ-VAE encode: image must be [B, 3, " + std::to_string(side) + ", " + std::to_string(side) +
                "] for a latent of " + std::to_string(patch_nums.back()) + ", got " + shape_str(img.shape()));
  return quantizer_.quantize(img_to_latent(img), patch_nums);
}

}  // namespace varcode::model
