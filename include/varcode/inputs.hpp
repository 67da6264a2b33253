// varcode public API: what users type or hand over, made into what Generator takes. The command
// line, the C API and the Python package share these, so a class name, a box or the PNG bytes of an
// image mean the same thing in all three.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "varcode/generator.hpp"
#include "varcode/tensor.hpp"

namespace varcode {

// Comma-separated items: a class number (7), a range (0-9), `all`, or a name from the model's class
// names (load_class_names), matched ignoring case and punctuation, whole or by one of its
// '/'-separated parts ("T-shirt/top" answers to "tshirt", "t-shirt" and "top"). Order and repeats
// are kept. Error starting with `what` (e.g. "--class") and saying what is accepted otherwise.
std::vector<int> parse_classes(const std::string& text, const std::string& what, int num_classes,
                               const std::vector<std::string>& names);

// Regenerate-masks [H, W] f32 at a picture's original resolution (1 = regenerate, 0 = keep).
// The rectangle [x0, x1) x [y0, y1) in the picture's pixels; Error naming `what` unless it is a
// non-empty rectangle inside the picture.
Tensor box_mask(int height, int width, int x0, int y0, int x1, int y1, const std::string& what);
// Keep the centre, regenerate a border of `margin` pixels; Error naming `what` unless
// 1 <= margin <= (min(H, W) - 1) / 2.
Tensor outpaint_mask(int height, int width, int margin, const std::string& what);
// A mask file: a PNG (non-black pixels = regenerate) or an .npy f32 [H, W] with values in [0, 1].
Tensor load_mask(const std::string& path);
// A mask [h, w] onto the square picture of `side` pixels the generator edits: a mask of the
// picture's original size (orig_h x orig_w) follows its centre crop, another size must be square
// (it then covers the prepared square picture); nearest sampling (fit_mask). Error naming `what`
// when the mask cannot be mapped, has values outside [0, 1], or regenerates nothing.
Tensor fit_edit_mask(const Tensor& mask_hw, int orig_h, int orig_w, int side, const std::string& what);

// 8-bit RGB [H, W, 3] of any size -> the picture [3, side, side] f32 in [0, 1] the VQ-VAE takes:
// value / 255 (as load_png), then VqvaeModel::fit_image (as load_picture does with a PNG).
Tensor picture_from_rgb8(const uint8_t* rgb, int height, int width, int side);

// Images f32 [B, 3, H, W] in [0, 1] -> 8-bit RGB [B, H, W, 3] into `dst` (B * H * W * 3 bytes):
// the very bytes save_png / save_pngs write (NaN -> 0, clamped to [0, 1], x * 255 truncated).
void images_to_rgb8(const Tensor& images, uint8_t* dst);

// The built-in Fashion-MNIST pair (models/fashion_{vae,drafter,refiner}.pth, CoDe with 3 drafter
// scales), looked for in $VARCODE_MODELS when set, else in each of `dirs`, else beside the running
// executable (<exe>/../models for a build tree, <exe>/../share/varcode/models for an installed
// one). Error naming the places searched when none holds them.
// draft_steps: the CoDe hand-over wanted (0 = the built-in default, 3); the pair fine-tuned for it
// (fashion_refiner_N.pth, and fashion_drafter_N.pth when shipped) is taken when there is one.
ModelFiles builtin_model_files(const std::vector<std::string>& dirs = {}, int draft_steps = 0);

}  // namespace varcode
