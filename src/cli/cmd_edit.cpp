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
#include "varcode/inputs.hpp"
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

// The regenerate-mask on the generator's square picture [side, side] (1 =
// regenerate), from the flag given, at the picture's original resolution.
Tensor mask_from_flags(const EditFlags& f, int orig_h, int orig_w, int side) {
  if (!f.mask.empty()) return fit_edit_mask(load_mask(f.mask), orig_h, orig_w, side, f.mask);
  if (!f.box.empty()) {
    std::vector<int> b = parse_int_list(f.box, "--box");
    if (b.size() != 4) throw Error("--box: expected X0,Y0,X1,Y1, got '" + f.box + "'");
    return fit_edit_mask(box_mask(orig_h, orig_w, b[0], b[1], b[2], b[3], "--box"), orig_h, orig_w, side, "--box");
  }
  return fit_edit_mask(outpaint_mask(orig_h, orig_w, f.outpaint, "--outpaint"), orig_h, orig_w, side, "--outpaint");
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
    f->pipe.dev.quiet = f->quiet;
    Generator gen = open_pipeline(f->pipe);
    const int side = gen.image_size();
    EditRequest req;
    int orig_h = 0, orig_w = 0;
    Tensor pic = load_picture(f->image, side, &orig_h, &orig_w);  // [3, S, S]
    req.image = pic.reshape({1, 3, side, side});
    req.mask = mask_from_flags(*f, orig_h, orig_w, side);
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
