// The public VqvaeModel over model::Vqvae.
#include "io/checkpoint.hpp"
#include "kernels/cpu/image_resize.hpp"
#include "model/config.hpp"
#include "model/vqvae.hpp"
#include "varcode/vqvae.hpp"

namespace varcode {

struct VqvaeModel::Impl {
  io::Checkpoint ckpt;  // keeps the memory-mapped weights alive
  model::Vqvae vae;
};

namespace {

// The schedules the engine knows: those of the official 256 px and 512 px models.
constexpr int64_t kKnownTokenCounts[] = {680, 2240};

}  // namespace

VqvaeModel VqvaeModel::open(const std::string& path, DType compute) {
  auto impl = std::make_shared<Impl>();
  impl->ckpt = io::load_checkpoint(path);
  impl->vae = model::Vqvae::load(impl->ckpt, compute);
  VqvaeModel m;
  m.impl_ = std::move(impl);
  return m;
}

const std::string& VqvaeModel::path() const { return impl_->ckpt.path; }
int VqvaeModel::ch() const { return impl_->vae.config().ch; }
int VqvaeModel::vocab() const { return impl_->vae.config().vocab; }
int VqvaeModel::z_channels() const { return impl_->vae.config().z_channels; }
int VqvaeModel::downsample() const { return impl_->vae.config().downsample(); }
bool VqvaeModel::can_encode() const { return impl_->vae.has_encoder(); }
int64_t VqvaeModel::num_params() const { return impl_->vae.config().params; }

std::vector<int> VqvaeModel::schedule_for_tokens(int64_t total_tokens) {
  if (total_tokens <= 0 || total_tokens > (int64_t{1} << 30))
    throw Error("a token count of " + std::to_string(total_tokens) + " matches no known scale schedule");
  return model::schedule_for_tokens(static_cast<int>(total_tokens));
}

int VqvaeModel::image_size_for_tokens(int64_t total_tokens) const {
  return impl_->vae.image_size(schedule_for_tokens(total_tokens));
}

std::vector<int> VqvaeModel::schedule_for_image_size(int image_side) const {
  std::string known;
  for (int64_t L : kKnownTokenCounts) {
    std::vector<int> s = model::schedule_for_tokens(static_cast<int>(L));
    const int side = impl_->vae.image_size(s);
    if (side == image_side) return s;
    known += (known.empty() ? "" : " or ") + std::to_string(side);
  }
  throw Error("an image of side " + std::to_string(image_side) + " fits no scale schedule of this VQ-VAE (" + known +
              " px)");
}

Tensor VqvaeModel::decode_tokens(const Tensor& tokens_BL) const {
  if (tokens_BL.dtype() != DType::i64 || tokens_BL.ndim() != 2 || tokens_BL.dim(0) < 1)
    throw Error("tokens must be int64 [B, L], got " + std::string(dtype_name(tokens_BL.dtype())) + " " +
                shape_str(tokens_BL.shape()));
  const backend::Backend& be = impl_->vae.backend();
  Tensor img = impl_->vae.tokens_to_img(tokens_BL, schedule_for_tokens(tokens_BL.dim(1)));  // [B, 3, H, W]
  be.add_mul(img.data<float>(), img.numel(), 1.0f, 0.5f, img.data<float>());  // the reference's add_(1).mul_(0.5)
  return be.to_host(img);
}

Tensor VqvaeModel::decode_fhat(const Tensor& f_hat) const {
  const backend::Backend& be = impl_->vae.backend();
  return be.to_host(impl_->vae.fhat_to_img(be.to_device(f_hat)));
}

EncodeResult VqvaeModel::encode(const Tensor& img) const {
  if (!can_encode()) throw Error(path() + ": this VQ-VAE file has no encoder: cannot encode");
  Tensor x = img.ndim() == 3 ? img.reshape({1, img.dim(0), img.dim(1), img.dim(2)}) : img;  // [B, 3, S, S]
  if (x.dtype() != DType::f32 || x.ndim() != 4 || x.dim(1) != 3 || x.dim(2) != x.dim(3))
    throw Error("encode: image must be f32 [B, 3, S, S] or [3, S, S], got " + std::string(dtype_name(img.dtype())) +
                " " + shape_str(img.shape()));
  EncodeResult r;
  r.patch_nums = schedule_for_image_size(static_cast<int>(x.dim(2)));
  const backend::Backend& be = impl_->vae.backend();
  model::Quantizer::Quantized q = impl_->vae.img_to_tokens(be.to_device(x), r.patch_nums);
  r.tokens = be.to_host(q.tokens);
  r.f_hat = be.to_host(q.f_hat);
  Tensor recon = impl_->vae.fhat_to_img(q.f_hat);  // [B, 3, S, S]
  be.add_mul(recon.data<float>(), recon.numel(), 1.0f, 0.5f, recon.data<float>());
  r.reconstruction = be.to_host(recon);
  return r;
}

Tensor VqvaeModel::fit_image(const Tensor& img_chw, int side) {
  return kernels::cpu::fit_square(img_chw, side, 0.0f, 1.0f);  // [3, side, side]
}

}  // namespace varcode
