// varcode encode --vae VAE --image IN --save-tokens T.npy [--out recon.png] [--save-image recon.npy]
//                [--size S | --patch-nums 1,2,... | --model VAR]
#include <CLI/CLI.hpp>
#include <fstream>
#include <memory>
#include <string>

#include "commands.hpp"
#include "model_flags.hpp"
#include "outputs.hpp"
#include "varcode/io.hpp"
#include "varcode/vqvae.hpp"

namespace varcode::cli {

namespace {

struct EncodeOptions {
  std::string vae, image, save_tokens, out, save_image, patch_nums, model;
  DeviceFlags dev;
  int size = 0;  // 0: the .npy's own size; for a PNG the VQ-VAE's released schedule's
};

// True for a PNG, false for an .npy, by their signatures.
bool is_png(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open the image");
  char magic[8] = {};
  f.read(magic, 8);
  const std::string head(magic, static_cast<size_t>(f.gcount()));
  if (head == "\x89PNG\r\n\x1a\n") return true;
  if (head.rfind("\x93NUMPY", 0) == 0) return false;
  throw Error(path + ": neither a PNG nor a .npy image");
}

// The picture as [3, S, S] in [0, 1]. A PNG of any size is centre-cropped to a square and resized
// to `side` (exact area filter when shrinking, bicubic when enlarging); an .npy is used as is.
Tensor load_picture(const EncodeOptions& o, int side) {
  if (is_png(o.image)) return VqvaeModel::fit_image(load_png(o.image), side);
  Tensor x = load_npy(o.image);
  if (x.ndim() == 4 && x.dim(0) == 1) x = x.reshape({x.dim(1), x.dim(2), x.dim(3)});
  if (x.dtype() != DType::f32 || x.ndim() != 3 || x.dim(0) != 3)
    throw Error(o.image + ": an image .npy must be f32 [1, 3, H, W] or [3, H, W] in [0, 1], got " +
                std::string(dtype_name(x.dtype())) + " " + shape_str(x.shape()));
  if (side > 0 && (x.dim(1) != side || x.dim(2) != side))
    throw Error(o.image + ": the .npy image is " + std::to_string(x.dim(2)) + "x" + std::to_string(x.dim(1)) +
                ", not the requested " + std::to_string(side) +
                " px (--size or the schedule; .npy images are used as is)");
  return x;
}

void run_encode(EncodeOptions o) {
  const Device device = device_from_flags(o.dev);  // before any file: a missing GPU is said first
  check_output_file(o.save_tokens, "--save-tokens");
  check_output_file(o.out, "--out");
  check_output_file(o.save_image, "--save-image");
  std::vector<int> schedule = schedule_flag(o.patch_nums, o.model);
  if (!schedule.empty() && o.size > 0) throw Error("--size: give either --size or the schedule, not both");
  if (o.vae.empty()) o.vae = builtin_vae();
  VqvaeModel vae = VqvaeModel::open(o.vae, DType::f32, device);
  if (!vae.can_encode()) throw Error(o.vae + ": this VQ-VAE file has no encoder");
  if (o.size > 0) schedule = vae.schedule_for_image_size(o.size);
  // A PNG is resized to the schedule's side: the given one, else the one this VQ-VAE was
  // released with (256 px for the official VAE, 32 px for the built-in one).
  const int side = schedule.empty() ? 0 : schedule.back() * vae.downsample();
  const bool png = is_png(o.image);
  if (png && schedule.empty()) schedule = vae.default_schedule();
  Tensor picture = load_picture(o, png ? schedule.back() * vae.downsample() : side);  // [3, S, S] in [0, 1]
  if (picture.dim(1) != picture.dim(2))
    throw Error(o.image + ": an .npy image must be square, got " + shape_str(picture.shape()));
  if (schedule.empty()) schedule = vae.schedule_for_image_size(static_cast<int>(picture.dim(1)));
  if (picture.dim(1) != schedule.back() * vae.downsample())
    throw Error(o.image + ": the .npy image is " + std::to_string(picture.dim(2)) + " px, the schedule needs " +
                std::to_string(schedule.back() * vae.downsample()) + " px (.npy images are used as is)");
  Tensor x = picture.clone();  // [3, S, S]
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = x.data<float>()[i] * 2.0f - 1.0f;
  EncodeResult r = vae.encode(x, schedule);
  save_npy(o.save_tokens, r.tokens);
  if (!o.out.empty()) save_png(o.out, image_grid(r.reconstruction));
  if (!o.save_image.empty()) save_npy(o.save_image, r.reconstruction);
}

}  // namespace

void register_encode(CLI::App& app) {
  auto opts = std::make_shared<EncodeOptions>();
  CLI::App* cmd = app.add_subcommand("encode", "Encode an image into multi-scale token maps with the VQ-VAE");
  cmd->add_option("--vae", opts->vae, "VQ-VAE checkpoint (.pth or .safetensors; default: the built-in one)");
  add_device_flags(cmd, opts->dev);
  cmd->add_option("--image", opts->image,
                  "PNG (any size: centre-cropped to a square, then resized with an area filter when shrinking "
                  "or bicubic when enlarging) or f32 .npy [1, 3, H, W] / [3, H, W] in [0, 1] (used as is)")
      ->required();
  cmd->add_option("--save-tokens", opts->save_tokens, "int64 .npy [1, L] of the token maps")->required();
  cmd->add_option("--out", opts->out, "PNG of the reconstruction (decode of the tokens)");
  cmd->add_option("--save-image", opts->save_image, "f32 .npy [1, 3, H, W] of the reconstruction in [0, 1]");
  cmd->add_option("--size", opts->size,
                  "image side to encode at, for a known schedule (256 or 512 with the official VAE, 32 with the "
                  "built-in one; default for a PNG: the VAE's own); any other side with --patch-nums")
      ->check(CLI::Range(1, 1 << 16));
  add_schedule_flags(cmd, opts->patch_nums, opts->model);
  cmd->callback([opts] { run_encode(*opts); });
}

}  // namespace varcode::cli
