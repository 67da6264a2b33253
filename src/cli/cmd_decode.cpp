// varcode decode --vae VAE --tokens T.npy [--out img.png | --out-dir DIR] [--save-image I.npy]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "commands.hpp"
#include "varcode/io.hpp"
#include "varcode/vqvae.hpp"

namespace varcode::cli {

namespace {

struct DecodeOptions {
  std::string vae, tokens, out, out_dir, save_image;
};

void run_decode(const DecodeOptions& o) {
  if (o.out.empty() && o.out_dir.empty() && o.save_image.empty())
    throw Error("decode: nothing to write: give --out, --out-dir or --save-image");
  // Everything is read and decoded before the first file is written.
  Tensor tokens = load_npy(o.tokens);  // [B, L]
  if (tokens.dtype() != DType::i64 || tokens.ndim() != 2)
    throw Error(o.tokens + ": tokens must be an int64 array [B, L], got " + std::string(dtype_name(tokens.dtype())) +
                " " + shape_str(tokens.shape()));
  VqvaeModel::schedule_for_tokens(tokens.dim(1));  // fail on the token count before loading the model
  VqvaeModel vae = VqvaeModel::open(o.vae);
  Tensor images;  // [B, 3, H, W] in [0, 1]
  try {
    images = vae.decode_tokens(tokens);
  } catch (const Error& e) {
    throw Error(o.tokens + ": " + e.what());
  }
  const int64_t B = images.dim(0), H = images.dim(2), W = images.dim(3);
  if (!o.out.empty()) save_png(o.out, image_grid(images));
  if (!o.out_dir.empty()) {
    std::filesystem::create_directories(o.out_dir);
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
  cmd->add_option("--vae", opts->vae, "VQ-VAE checkpoint (.pth or .safetensors)")->required();
  cmd->add_option("--tokens", opts->tokens, "int64 .npy of shape [B, L] (L = 680 for 256 px, 2240 for 512 px)")
      ->required();
  auto* out = cmd->add_option("--out", opts->out, "PNG of all images in one grid (B = 1: the image)");
  auto* out_dir = cmd->add_option("--out-dir", opts->out_dir, "folder for one PNG per image: 000000.png, ...");
  out->excludes(out_dir);
  out_dir->excludes(out);
  cmd->add_option("--save-image", opts->save_image, "f32 .npy [B, 3, H, W] of the images in [0, 1]");
  cmd->callback([opts] { run_decode(*opts); });
}

}  // namespace varcode::cli
