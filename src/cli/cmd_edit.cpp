// varcode edit: inpainting, outpainting and class-conditional editing of a
// user's picture.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <random>

#include "class_list.hpp"
#include "commands.hpp"
#include "model_flags.hpp"
#include "outputs.hpp"
#include "varcode/io.hpp"

namespace varcode::cli {

namespace {
struct EditFlags {
  PipelineFlags pipe;
  SamplingFlags sampling;
  std::string image, mask, box, out = "edited.png", save_tokens, save_image;
  int outpaint = -1;
  std::string class_label;
  uint64_t seed = 0;
  bool seed_given = false, quiet = false;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The regenerate-mask at the picture's original resolution [H, W] (1 =
// regenerate).
Tensor mask_from_flags(const EditFlags& f, int orig_h, int orig_w, int side) {
  if (!f.mask.empty()) {
    Tensor m;
    if (ends_with(f.mask, ".npy")) {
      m = load_npy(f.mask);
      if (m.dtype() != DType::f32 || m.ndim() != 2)
        throw Error(f.mask + ": expected a float32 mask [H, W] (1 = regenerate), got " + shape_str(m.shape()));
      for (int64_t i = 0; i < m.numel(); ++i) {
        const float v = m.data<float>()[i];
        if (!(v >= 0.0f && v <= 1.0f)) throw Error(f.mask + ": mask values must be in [0, 1]");
      }
    } else {
      Tensor png = load_png(f.mask);  // [3, H, W]: non-black pixels are regenerated
      const int64_t H = png.dim(1), W = png.dim(2);
      m = Tensor::empty(DType::f32, {H, W});  // [H, W]
      for (int64_t i = 0; i < H * W; ++i) {
        const float* p = png.data<float>();
        m.data<float>()[i] = (p[i] + p[H * W + i] + p[2 * H * W + i]) > 0 ? 1.0f : 0.0f;
      }
    }
    const int64_t H = m.dim(0), W = m.dim(1);
    // A mask of the picture's size follows the picture's crop; another size
    // must be square (it then covers the prepared square picture).
    if (!(H == orig_h && W == orig_w) && H != W)
      throw Error(f.mask + ": a mask of " + std::to_string(W) + "x" + std::to_string(H) +
                  " cannot be mapped onto the picture (" + std::to_string(orig_w) + "x" + std::to_string(orig_h) +
                  "): give it the picture's size or make it square");
    return fit_mask(m, side);
  }
  Tensor m = Tensor::zeros(DType::f32, {orig_h, orig_w});  // [H, W]
  if (!f.box.empty()) {
    std::vector<int> b = parse_int_list(f.box, "--box");
    if (b.size() != 4) throw Error("--box: expected X0,Y0,X1,Y1, got '" + f.box + "'");
    if (b[0] < 0 || b[1] < 0 || b[2] > orig_w || b[3] > orig_h || b[0] >= b[2] || b[1] >= b[3])
      throw Error("--box " + f.box + " is not a non-empty rectangle inside the picture (0,0," + std::to_string(orig_w) +
                  "," + std::to_string(orig_h) + ")");
    for (int y = b[1]; y < b[3]; ++y)
      for (int x = b[0]; x < b[2]; ++x) m.data<float>()[static_cast<int64_t>(y) * orig_w + x] = 1.0f;
  } else {
    const int g = f.outpaint;
    if (g <= 0 || 2 * g >= std::min(orig_h, orig_w))
      throw Error("--outpaint " + std::to_string(g) + ": the margin must be in [1, " +
                  std::to_string((std::min(orig_h, orig_w) - 1) / 2) + "] pixels");
    for (int y = 0; y < orig_h; ++y)
      for (int x = 0; x < orig_w; ++x)
        if (y < g || x < g || y >= orig_h - g || x >= orig_w - g)
          m.data<float>()[static_cast<int64_t>(y) * orig_w + x] = 1.0f;
  }
  return fit_mask(m, side);
}
}  // namespace

void register_edit(CLI::App& app) {
  auto f = std::make_shared<EditFlags>();
  auto* cmd = app.add_subcommand("edit", "Inpaint, outpaint or class-edit a picture (VAR or CoDe)");
  add_pipeline_flags(cmd, f->pipe);
  add_sampling_flags(cmd, f->sampling);
  cmd->add_option("--image", f->image,
                  "The picture: PNG (any size; centre-cropped and resized) or "
                  ".npy [1,3,H,W] in [0,1]")
      ->required();
  auto* mask =
      cmd->add_option("--mask", f->mask, "What to regenerate: PNG (non-black) or .npy [H, W] (1 = regenerate)");
  auto* box = cmd->add_option("--box", f->box, "Regenerate the rectangle X0,Y0,X1,Y1 (picture pixels)");
  auto* outpaint = cmd->add_option("--outpaint", f->outpaint, "Keep the centre, regenerate a border of MARGIN pixels");
  mask->excludes(box)->excludes(outpaint);
  box->excludes(outpaint);
  cmd->add_option("--class", f->class_label, "Class of the new content (number or the model's class name)")->required();
  cmd->add_option("--seed", f->seed, "Seed (default: drawn and printed)")->each([f](const std::string&) {
    f->seed_given = true;
  });
  cmd->add_option("--out", f->out, "Edited picture (PNG, default edited.png)");
  cmd->add_option("--save-tokens", f->save_tokens, "int64 [1, L] tokens (.npy)");
  cmd->add_option("--save-image", f->save_image, "float32 [1, 3, H, W] in [0, 1] (.npy)");
  cmd->add_flag("--quiet", f->quiet, "No progress on stderr");
  cmd->callback([f] {
    if (f->mask.empty() && f->box.empty() && f->outpaint < 0)
      throw Error("edit: give exactly one of --mask, --box or --outpaint");
    check_output_file(f->out, "--out");
    check_output_file(f->save_tokens, "--save-tokens");
    check_output_file(f->save_image, "--save-image");
    Generator gen = open_pipeline(f->pipe);
    const int side = gen.image_size();
    EditRequest req;
    int orig_h = 0, orig_w = 0;
    Tensor pic = load_picture(f->image, side, &orig_h, &orig_w);  // [3, S, S]
    req.image = pic.reshape({1, 3, side, side});
    req.mask = mask_from_flags(*f, orig_h, orig_w, side);
    double regen = 0;
    for (int64_t i = 0; i < req.mask.numel(); ++i) regen += req.mask.data<float>()[i];
    if (regen == 0)
      throw Error(
          "edit: the mask regenerates nothing (it is empty after "
          "mapping onto the picture)");
    const std::vector<int> cls =
        parse_classes(f->class_label, "--class", gen.num_classes(), class_names(f->pipe, gen.num_classes()));
    if (cls.size() != 1) throw Error("--class: expected one class, got '" + f->class_label + "'");
    req.class_label = cls[0];
    req.sampling = sampling_from_flags(f->sampling, gen);
    req.seed = f->seed_given ? f->seed : std::random_device{}() | (static_cast<uint64_t>(std::random_device{}()) << 32);
    if (!f->seed_given) std::cerr << "seed " << req.seed << "\n";
    GenerateResult res = gen.edit(req, stderr_progress(f->quiet));
    if (!f->quiet && isatty(STDERR_FILENO)) std::cerr << "\n";
    if (!f->save_tokens.empty()) save_npy(f->save_tokens, res.tokens);
    if (!f->save_image.empty()) save_npy(f->save_image, res.images);
    save_png(f->out, image_grid(res.images));
    if (!f->quiet)
      std::fprintf(stderr, "edited -> %s (%s %.2f s, %s%.2f s, vae %.2f s)\n", f->out.c_str(),
                   gen.collaborative() ? "drafter" : "var", res.seconds.drafter, gen.collaborative() ? "refiner " : "-",
                   res.seconds.refiner, res.seconds.vae);
  });
}

}  // namespace varcode::cli
