// varcode decode --vae VAE --tokens T.npy [--out img.png | --out-dir DIR] [--save-image I.npy]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "model_flags.hpp"
#include "outputs.hpp"
#include "varcode/io.hpp"
#include "varcode/vqvae.hpp"

namespace varcode::cli {

namespace {

struct DecodeOptions {
  std::string vae, tokens, out, out_dir, save_image, patch_nums, model;
  DeviceFlags dev;
};

void run_decode(DecodeOptions o) {
  const Device device = device_from_flags(o.dev);  // before any file: a missing GPU is said first
  if (o.out.empty() && o.out_dir.empty() && o.save_image.empty())
    throw Error("decode: nothing to write: give --out, --out-dir or --save-image");
  check_output_file(o.out, "--out");
  check_output_dir(o.out_dir, "--out-dir");
  check_output_file(o.save_image, "--save-image");
  // Everything is read and decoded before the first file is written.
  Tensor tokens = load_npy(o.tokens);  // [B, L]
  if (tokens.dtype() != DType::i64 || tokens.ndim() != 2)
    throw Error(o.tokens + ": tokens must be an int64 array [B, L], got " + std::string(dtype_name(tokens.dtype())) +
                " " + shape_str(tokens.shape()));
  // The schedule: --patch-nums, else the VAR model's (--model), else the known one of L (the
  // official 256 / 512 px models, the built-in ones), checked before the model loads.
  std::vector<int> schedule = schedule_flag(o.patch_nums, o.model);
  if (schedule.empty()) {
    try {
      schedule = VqvaeModel::schedule_for_tokens(tokens.dim(1));
    } catch (const Error& e) {
      throw Error(o.tokens + ": " + e.what() + " or the VAR model that made them (--model)");
    }
  }
  if (o.vae.empty()) o.vae = builtin_vae();
  VqvaeModel vae = VqvaeModel::open(o.vae, DType::f32, device);
  Tensor images;  // [B, 3, H, W] in [0, 1]
  try {
    images = vae.decode_tokens(tokens, schedule);
  } catch (const Error& e) {
    throw Error(o.tokens + ": " + e.what());
  }
  const int64_t B = images.dim(0), H = images.dim(2), W = images.dim(3);
  if (!o.out.empty()) save_png(o.out, image_grid(images));
  if (!o.out_dir.empty()) {
    std::filesystem::create_directories(o.out_dir);
    std::vector<std::string> files;
    for (int64_t b = 0; b < B; ++b) {
      char name[32];
      std::snprintf(name, sizeof(name), "%06lld.png", static_cast<long long>(b));
      files.emplace_back(name);
    }
    remove_stale_temporaries(o.out_dir, files);  // a killed run's, for the names written now
    for (int64_t b = 0; b < B; ++b) {
      char name[32];
      std::snprintf(name, sizeof(name), "%06lld.png", static_cast<long long>(b));
      Tensor one = Tensor::empty(DType::f32, {3, H, W});  // [3, H, W]
      std::copy_n(images.data<float>() + b * 3 * H * W, 3 * H * W, one.data<float>());
      save_png((std::filesystem::path(o.out_dir) / name).string(), one);
    }
  }
  if (!o.save_image.empty()) save_npy(o.save_image, images);
}

}  // namespace

void register_decode(CLI::App& app) {
  auto opts = std::make_shared<DecodeOptions>();
  CLI::App* cmd = app.add_subcommand("decode", "Decode multi-scale token maps into images with the VQ-VAE");
  cmd->add_option("--vae", opts->vae, "VQ-VAE checkpoint (.pth or .safetensors; default: the built-in one)");
  add_device_flags(cmd, opts->dev);
  cmd->add_option("--tokens", opts->tokens,
                  "int64 .npy of shape [B, L] (L = 680 for 256 px, 2240 for 512 px, 130 for the built-in models)")
      ->required();
  add_schedule_flags(cmd, opts->patch_nums, opts->model);
  auto* out = cmd->add_option("--out", opts->out, "PNG of all images in one grid (B = 1: the image)");
  auto* out_dir = cmd->add_option("--out-dir", opts->out_dir, "folder for one PNG per image: 000000.png, ...");
  out->excludes(out_dir);
  out_dir->excludes(out);
  cmd->add_option("--save-image", opts->save_image, "f32 .npy [B, 3, H, W] of the images in [0, 1]");
  cmd->callback([opts] { run_decode(*opts); });
}

}  // namespace varcode::cli
