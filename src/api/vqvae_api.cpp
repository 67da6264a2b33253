// The public VqvaeModel over model::Vqvae.
#include "api/thread_budget.hpp"
#include "backend/devices.hpp"
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

// The schedules of the released models, and the VQ-VAE shape each was released with (latent
// downsampling, codebook size).
struct KnownSchedule {
  std::vector<int> patch_nums;
  int downsample, vocab;
  const char* what;
};
const std::vector<KnownSchedule>& known_schedules() {
  static const std::vector<KnownSchedule> k = {
      {{1, 2, 3, 4, 5, 6, 8, 10, 13, 16}, 16, 4096, "the official 256 px models"},
      {{1, 2, 3, 4, 6, 9, 13, 18, 24, 32}, 16, 4096, "the official 512 px model"},
      {{1, 2, 3, 4, 6, 8}, 4, 1024, "the built-in Fashion-MNIST models"},
  };
  return k;
}

int64_t token_count(const std::vector<int>& pn) {
  int64_t L = 0;
  for (int p : pn) L += int64_t{p} * p;
  return L;
}

std::string known_list() {
  std::string s;
  for (const KnownSchedule& k : known_schedules())
    s += (s.empty() ? "" : ", ") + std::to_string(token_count(k.patch_nums)) + " for " + k.what;
  return s;
}

}  // namespace

VqvaeModel VqvaeModel::open(const std::string& path, DType compute) { return open(path, compute, Device{}); }

VqvaeModel VqvaeModel::open(const std::string& path, DType compute, Device device) {
  auto be = backend::backend_for(device);  // before the file: a missing GPU is said first
  auto impl = std::make_shared<Impl>();
  impl->ckpt = io::load_checkpoint(path);
  impl->vae = model::Vqvae::load(impl->ckpt, compute, std::move(be));
  VqvaeModel m;
  m.impl_ = std::move(impl);
  return m;
}

const std::string& VqvaeModel::path() const { return impl_->ckpt.path; }
Device VqvaeModel::device() const { return impl_->vae.backend().device(); }
int VqvaeModel::ch() const { return impl_->vae.config().ch; }
int VqvaeModel::vocab() const { return impl_->vae.config().vocab; }
int VqvaeModel::z_channels() const { return impl_->vae.config().z_channels; }
int VqvaeModel::downsample() const { return impl_->vae.config().downsample(); }
bool VqvaeModel::can_encode() const { return impl_->vae.has_encoder(); }
int64_t VqvaeModel::num_params() const { return impl_->vae.config().params; }

std::vector<int> VqvaeModel::schedule_for_tokens(int64_t total_tokens) {
  for (const KnownSchedule& k : known_schedules())
    if (token_count(k.patch_nums) == total_tokens) return k.patch_nums;
  throw Error("a token count of " + std::to_string(total_tokens) + " matches no known scale schedule (" + known_list() +
              "); give the schedule (--patch-nums 1,2,3,...)");
}

void VqvaeModel::check_schedule(const std::vector<int>& pn, const std::string& what) {
  if (pn.empty()) throw Error(what + ": empty schedule");
  for (size_t i = 0; i < pn.size(); ++i)
    if (pn[i] < 1 || pn[i] > 4096 || (i > 0 && pn[i] <= pn[i - 1]))
      throw Error(what + ": expected increasing positive sides such as 1,2,3,4,6,8, got " + std::to_string(pn[i]) +
                  " at position " + std::to_string(i));
}

int VqvaeModel::image_size_for_tokens(int64_t total_tokens) const {
  return impl_->vae.image_size(schedule_for_tokens(total_tokens));
}

std::vector<int> VqvaeModel::schedule_for_image_size(int image_side) const {
  std::string sides;
  for (const bool own : {true, false})
    for (const KnownSchedule& k : known_schedules()) {
      const bool mine = k.downsample == downsample() && k.vocab == vocab();
      if (mine != own) continue;
      if (impl_->vae.image_size(k.patch_nums) == image_side) return k.patch_nums;
      sides += (sides.empty() ? "" : ", ") + std::to_string(impl_->vae.image_size(k.patch_nums));
    }
  throw Error("an image of side " + std::to_string(image_side) +
              " fits no scale schedule of this VQ-VAE that varcode knows (" + sides +
              " px); give the schedule (--patch-nums 1,2,...), any side that is a multiple of " +
              std::to_string(downsample()) + " works");
}

std::vector<int> VqvaeModel::default_schedule() const {
  for (const KnownSchedule& k : known_schedules())
    if (k.downsample == downsample() && k.vocab == vocab()) return k.patch_nums;
  throw Error(path() + ": a VQ-VAE of another shape than the released ones (downsampling " +
              std::to_string(downsample()) + ", " + std::to_string(vocab()) +
              " codes): give the schedule (--patch-nums) or the size (--size)");
}

Tensor VqvaeModel::decode_tokens(const Tensor& tokens_BL) const {
  if (tokens_BL.dtype() != DType::i64 || tokens_BL.ndim() != 2 || tokens_BL.dim(0) < 1)
    throw Error("tokens must be int64 [B, L], got " + std::string(dtype_name(tokens_BL.dtype())) + " " +
                shape_str(tokens_BL.shape()));
  return decode_tokens(tokens_BL, schedule_for_tokens(tokens_BL.dim(1)));
}

Tensor VqvaeModel::decode_tokens(const Tensor& tokens_BL, const std::vector<int>& patch_nums) const {
  if (tokens_BL.dtype() != DType::i64 || tokens_BL.ndim() != 2 || tokens_BL.dim(0) < 1)
    throw Error("tokens must be int64 [B, L], got " + std::string(dtype_name(tokens_BL.dtype())) + " " +
                shape_str(tokens_BL.shape()));
  check_schedule(patch_nums, "schedule");
  if (token_count(patch_nums) != tokens_BL.dim(1))
    throw Error("tokens [B, " + std::to_string(tokens_BL.dim(1)) + "] do not follow the schedule given, which has " +
                std::to_string(token_count(patch_nums)) + " tokens");
  detail::ThreadLease lease;
  const backend::Backend& be = impl_->vae.backend();
  Tensor img = impl_->vae.tokens_to_img(tokens_BL, patch_nums);               // [B, 3, H, W]
  be.add_mul(img.data<float>(), img.numel(), 1.0f, 0.5f, img.data<float>());  // the reference's add_(1).mul_(0.5)
  return be.to_host(img);
}

Tensor VqvaeModel::decode_fhat(const Tensor& f_hat) const {
  detail::ThreadLease lease;
  const backend::Backend& be = impl_->vae.backend();
  return be.to_host(impl_->vae.fhat_to_img(be.to_device(f_hat)));
}

EncodeResult VqvaeModel::encode(const Tensor& img) const {
  // A malformed picture gets the shape error of the overload below, not a schedule error.
  const bool shaped = (img.ndim() == 3 || img.ndim() == 4) && img.dim(img.ndim() - 1) == img.dim(img.ndim() - 2);
  return encode(img, shaped ? schedule_for_image_size(static_cast<int>(img.dim(img.ndim() - 1))) : std::vector<int>{1});
}

EncodeResult VqvaeModel::encode(const Tensor& img, const std::vector<int>& patch_nums) const {
  check_schedule(patch_nums, "schedule");
  if (!can_encode()) throw Error(path() + ": this VQ-VAE file has no encoder: cannot encode");
  Tensor x = img.ndim() == 3 ? img.reshape({1, img.dim(0), img.dim(1), img.dim(2)}) : img;  // [B, 3, S, S]
  if (x.dtype() != DType::f32 || x.ndim() != 4 || x.dim(1) != 3 || x.dim(2) != x.dim(3))
    throw Error("encode: image must be f32 [B, 3, S, S] or [3, S, S], got " + std::string(dtype_name(img.dtype())) +
                " " + shape_str(img.shape()));
  detail::ThreadLease lease;
  EncodeResult r;
  if (impl_->vae.image_size(patch_nums) != x.dim(2))
    throw Error("encode: an image of side " + std::to_string(x.dim(2)) + " does not fit the schedule given (side " +
                std::to_string(impl_->vae.image_size(patch_nums)) + ")");
  r.patch_nums = patch_nums;
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
