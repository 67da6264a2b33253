// varcode public API: the multi-scale VQ-VAE (tokens <-> pixels).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "varcode/tensor.hpp"

namespace varcode {

struct EncodeResult {
  Tensor tokens;                // [B, L] int64, the multi-scale token maps, scale after scale
  Tensor f_hat;                 // [B, Cvae, P, P] f32, the quantized latent
  Tensor reconstruction;        // [B, 3, H, W] f32 in [0, 1], decode_fhat(f_hat) mapped to [0, 1]
  std::vector<int> patch_nums;  // the schedule used
};

// A loaded VQ-VAE. Immutable; copies share the weights; const methods are thread-safe.
class VqvaeModel {
 public:
  // Loads a VQ-VAE checkpoint (.pth or .safetensors) and checks every tensor against the
  // architecture inferred from it. Error for a missing or unreadable file, a VAR transformer file,
  // or a tensor of the wrong name or shape. `compute` is the decoder's arithmetic: DType::f32
  // (default; matches the PyTorch reference to ~1e-5) or DType::bf16 (bf16 activations and
  // weights in the convolutions, f32 accumulation and statistics: about twice as fast, images
  // within ~1e-2 of f32). Encoding is f32 either way. Error for any other dtype.
  static VqvaeModel open(const std::string& path, DType compute = DType::f32);
  // The same on a device (choose_device(), varcode/runtime.hpp).
  static VqvaeModel open(const std::string& path, DType compute, Device device);
  Device device() const;

  const std::string& path() const;
  int ch() const;           // base channel count (160 for the official model)
  int vocab() const;        // codebook size V
  int z_channels() const;   // latent channels Cvae
  int downsample() const;   // image side / latent side (16 for the official model)
  bool can_encode() const;  // false for a decoder-only file
  int64_t num_params() const;

  // A VQ-VAE file does not record the VAR schedule its tokens follow, so these know the
  // schedules of the released models: the official 256 px (L = 680) and 512 px (L = 2240) ones and
  // the built-in Fashion-MNIST models' (1, 2, 3, 4, 6, 8; L = 130). Any other schedule is given
  // explicitly (the overloads taking `patch_nums`).
  //
  // The known schedule of a token count; Error (suggesting an explicit schedule) for any other.
  static std::vector<int> schedule_for_tokens(int64_t total_tokens);
  // Image side decoded from `total_tokens` tokens: pn_last * downsample().
  int image_size_for_tokens(int64_t total_tokens) const;
  // The known schedule whose latent is image_side / downsample(), preferring the ones released
  // with a VQ-VAE of this shape (256 -> the 256 px schedule for the official VAE; 32 -> the
  // built-in one for fashion_vae.pth); Error when none fits.
  std::vector<int> schedule_for_image_size(int image_side) const;
  // The schedule this VQ-VAE was released with (the official VAE: 256 px; the built-in one:
  // 32 px); Error for a VQ-VAE of another shape.
  std::vector<int> default_schedule() const;
  // Error unless `patch_nums` is a usable schedule: increasing positive sides; `what` names it.
  static void check_schedule(const std::vector<int>& patch_nums, const std::string& what);

  // tokens [B, L] int64 in [0, V) -> image [B, 3, H, W] f32 in [0, 1], with the known schedule of
  // L, or the given one (the sum of its squares must be L; any side the VAE supports).
  Tensor decode_tokens(const Tensor& tokens_BL) const;
  Tensor decode_tokens(const Tensor& tokens_BL, const std::vector<int>& patch_nums) const;
  // f_hat [B, Cvae, P, P] f32 -> clamp(decoder(post_quant_conv(f_hat)), -1, 1), [B, 3, H, W].
  Tensor decode_fhat(const Tensor& f_hat) const;
  // img [B, 3, S, S] or [3, S, S] f32 in [-1, 1], S = image side of a known schedule
  // (schedule_for_image_size) -> tokens, f_hat, reconstruction.
  EncodeResult encode(const Tensor& img) const;
  // The same with a given schedule: S = patch_nums.back() * downsample().
  EncodeResult encode(const Tensor& img, const std::vector<int>& patch_nums) const;

  // Brings a picture [3, H, W] (any size, values in [0, 1]) to the encoder's square input
  // [3, side, side]: centre crop to a square, then an exact area (box) filter when shrinking or
  // bicubic (A = -0.75, clamped to [0, 1]) when enlarging.
  static Tensor fit_image(const Tensor& img_chw, int side);

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace varcode
