// Class lists, edit masks, image bytes and the built-in models: the public inputs API
// (varcode/inputs.hpp), shared by the command line, the C API and the Python package.
#include "varcode/inputs.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "io/png.hpp"
#include "varcode/io.hpp"
#include "varcode/vqvae.hpp"

namespace varcode {

namespace {

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// A strict non-negative integer of at most 9 digits (no sign, no spaces, no trailing junk).
bool parse_uint(const std::string& s, long long* out) {
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
    return false;
  *out = std::stoll(s);
  return true;
}

// Letters and digits only, lower case: "T-shirt" -> "tshirt".
std::string fold(const std::string& s) {
  std::string out;
  for (unsigned char c : s)
    if (std::isalnum(c)) out.push_back(static_cast<char>(std::tolower(c)));
  return out;
}

int find_name(const std::string& item, const std::vector<std::string>& names) {
  const std::string want = fold(item);
  if (want.empty()) return -1;
  for (size_t i = 0; i < names.size(); ++i)
    if (fold(names[i]) == want) return static_cast<int>(i);
  for (size_t i = 0; i < names.size(); ++i) {
    std::stringstream parts(names[i]);
    std::string part;
    while (std::getline(parts, part, '/'))
      if (fold(part) == want) return static_cast<int>(i);
  }
  return -1;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// " Did you mean 'Sneaker'?" for the (up to three) names nearest to a misspelt one, by edit
// distance over the folded name and its '/'-parts; "" when none is near.
std::string suggestion(const std::string& item, const std::vector<std::string>& names) {
  const std::string want = fold(item);
  if (want.empty()) return "";
  const size_t limit = std::max<size_t>(2, want.size() / 3);
  std::vector<std::pair<size_t, size_t>> near;  // (distance, name index)
  for (size_t i = 0; i < names.size(); ++i) {
    size_t best = edit_distance(want, fold(names[i]));
    std::stringstream parts(names[i]);
    std::string part;
    while (std::getline(parts, part, '/')) best = std::min(best, edit_distance(want, fold(part)));
    if (best <= limit) near.emplace_back(best, i);
  }
  if (near.empty()) return "";
  std::stable_sort(near.begin(), near.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  std::string out = " Did you mean ";
  for (size_t k = 0; k < std::min<size_t>(3, near.size()); ++k)
    out += (k ? (k + 1 == std::min<size_t>(3, near.size()) ? " or '" : ", '") : "'") + names[near[k].second] + "'";
  return out + "?";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<int> parse_classes(const std::string& text, const std::string& what, int num_classes,
                               const std::vector<std::string>& names) {
  std::string hint = " (expected class numbers 0-" + std::to_string(num_classes - 1) + ", ranges such as 0-3, `all`";
  if (!names.empty()) hint += " or names such as '" + names.front() + "'";
  hint += ")";
  if (trim(text).empty()) throw Error(what + ": empty" + hint);
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    if (item == "all") {
      for (int c = 0; c < num_classes; ++c) out.push_back(c);
      continue;
    }
    if (const int named = find_name(item, names); named >= 0) {
      out.push_back(named);
      continue;
    }
    const size_t dash = item.find('-', 1);
    long long lo = 0, hi = 0;
    const bool ok = dash == std::string::npos
                        ? parse_uint(item, &lo) && ((hi = lo), true)
                        : parse_uint(trim(item.substr(0, dash)), &lo) && parse_uint(trim(item.substr(dash + 1)), &hi);
    if (!ok) {
      std::string msg = "'" + item + "' is not a class number, a range";
      msg += names.empty() ? " or `all`; this model has no class names (one per line in "
                             "<model>.classes.txt or classes.txt beside the model file)"
                           : ", `all` or a class name";
      throw Error(what + ": " + msg + hint + suggestion(item, names));
    }
    if (hi < lo) throw Error(what + ": the range '" + item + "' is empty (it ends before it starts)");
    if (hi >= num_classes)
      throw Error(what + ": " + std::to_string(hi) + " is outside the model's classes [0, " +
                  std::to_string(num_classes) + ")");
    for (long long c = lo; c <= hi; ++c) out.push_back(static_cast<int>(c));
  }
  if (out.empty()) throw Error(what + ": no class given" + hint);
  return out;
}

Tensor box_mask(int height, int width, int x0, int y0, int x1, int y1, const std::string& what) {
  if (x0 < 0 || y0 < 0 || x1 > width || y1 > height || x0 >= x1 || y0 >= y1)
    throw Error(what + " " + std::to_string(x0) + "," + std::to_string(y0) + "," + std::to_string(x1) + "," +
                std::to_string(y1) + " is not a non-empty rectangle inside the picture (0,0," + std::to_string(width) +
                "," + std::to_string(height) + ")");
  Tensor m = Tensor::zeros(DType::f32, {height, width});  // [H, W]
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) m.data<float>()[static_cast<int64_t>(y) * width + x] = 1.0f;
  return m;
}

Tensor outpaint_mask(int height, int width, int margin, const std::string& what) {
  const int g = margin;
  if (g <= 0 || 2 * g >= std::min(height, width))
    throw Error(what + " " + std::to_string(g) + ": the margin must be in [1, " +
                std::to_string((std::min(height, width) - 1) / 2) + "] pixels");
  Tensor m = Tensor::zeros(DType::f32, {height, width});  // [H, W]
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      if (y < g || x < g || y >= height - g || x >= width - g)
        m.data<float>()[static_cast<int64_t>(y) * width + x] = 1.0f;
  return m;
}

Tensor load_mask(const std::string& path) {
  if (ends_with(path, ".npy")) {
    Tensor m = load_npy(path);
    if (m.dtype() != DType::f32 || m.ndim() != 2)
      throw Error(path + ": expected a float32 mask [H, W] (1 = regenerate), got " + shape_str(m.shape()));
    for (int64_t i = 0; i < m.numel(); ++i) {
      const float v = m.data<float>()[i];
      if (!(v >= 0.0f && v <= 1.0f)) throw Error(path + ": mask values must be in [0, 1]");
    }
    return m;
  }
  Tensor png = load_png(path);  // [3, H, W]: non-black pixels are regenerated
  const int64_t H = png.dim(1), W = png.dim(2);
  Tensor m = Tensor::empty(DType::f32, {H, W});  // [H, W]
  const float* p = png.data<float>();
  for (int64_t i = 0; i < H * W; ++i) m.data<float>()[i] = (p[i] + p[H * W + i] + p[2 * H * W + i]) > 0 ? 1.0f : 0.0f;
  return m;
}

Tensor fit_edit_mask(const Tensor& mask_hw, int orig_h, int orig_w, int side, const std::string& what) {
  if (mask_hw.dtype() != DType::f32 || mask_hw.ndim() != 2 || mask_hw.numel() == 0)
    throw Error(what + ": expected a float32 mask [H, W] (1 = regenerate), got " + shape_str(mask_hw.shape()));
  for (int64_t i = 0; i < mask_hw.numel(); ++i) {
    const float v = mask_hw.data<float>()[i];
    if (!(v >= 0.0f && v <= 1.0f)) throw Error(what + ": mask values must be in [0, 1]");
  }
  const int64_t H = mask_hw.dim(0), W = mask_hw.dim(1);
  if (!(H == orig_h && W == orig_w) && H != W)
    throw Error(what + ": a mask of " + std::to_string(W) + "x" + std::to_string(H) +
                " cannot be mapped onto the picture (" + std::to_string(orig_w) + "x" + std::to_string(orig_h) +
                "): give it the picture's size or make it square");
  Tensor m = fit_mask(mask_hw, side);  // [side, side]
  double regen = 0;
  for (int64_t i = 0; i < m.numel(); ++i) regen += m.data<float>()[i];
  if (regen == 0) throw Error("edit: the mask regenerates nothing (it is empty after mapping onto the picture)");
  return m;
}

Tensor picture_from_rgb8(const uint8_t* rgb, int height, int width, int side) {
  if (height <= 0 || width <= 0)
    throw Error("picture: expected an RGB image [H, W, 3], got " + std::to_string(height) + "x" +
                std::to_string(width));
  const int64_t H = height, W = width;
  Tensor t = Tensor::empty(DType::f32, {3, H, W});  // [3, H, W]
  float* p = t.data<float>();
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < 3; ++c) p[(c * H + y) * W + x] = static_cast<float>(rgb[(y * W + x) * 3 + c]) / 255.0f;
  return VqvaeModel::fit_image(t, side);  // [3, side, side]
}

void images_to_rgb8(const Tensor& images, uint8_t* dst) {
  if (images.dtype() != DType::f32 || images.ndim() != 4 || images.dim(1) != 3)
    throw Error("images_to_rgb8: images must be f32 [B, 3, H, W], got " + shape_str(images.shape()));
  const int64_t B = images.dim(0), H = images.dim(2), W = images.dim(3);
  for (int64_t b = 0; b < B; ++b)
    io::chw_to_rgb8(images.data<float>() + b * 3 * H * W, static_cast<int>(H), static_cast<int>(W),
                    dst + b * H * W * 3);
}

namespace {
// CoDe hand-over for the built-in pair: the drafter draws scales 1-3 of 6 (14 of 130 tokens).
constexpr int kBuiltinDraftSteps = 3;
}  // namespace

ModelFiles builtin_model_files(const std::vector<std::string>& dirs, int draft_steps) {
  namespace fs = std::filesystem;
  std::vector<fs::path> tried;
  if (const char* env = std::getenv("VARCODE_MODELS"); env && *env) {
    tried.emplace_back(env);
  } else {
    for (const std::string& d : dirs) tried.emplace_back(d);
    std::error_code ec;
    const fs::path exe_dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
    if (!ec) {
      tried.push_back(exe_dir / ".." / "models");
      tried.push_back(exe_dir / ".." / "share" / "varcode" / "models");
    }
  }
  std::string where;
  for (const fs::path& dir : tried) {
    std::error_code ec;
    if (fs::exists(dir / "fashion_drafter.pth", ec)) {
      const std::string d = fs::weakly_canonical(dir, ec).string();
      ModelFiles files;
      files.vae = d + "/fashion_vae.pth";
      files.draft_steps = draft_steps > 0 ? draft_steps : kBuiltinDraftSteps;
      // A pair fine-tuned for N (tools/train/finetune_code.py) when shipped: its refiner, and its
      // drafter unless the drafter's own tuning was not kept.
      const std::string n = std::to_string(files.draft_steps);
      const bool tuned = fs::exists(dir / ("fashion_refiner_" + n + ".pth"), ec);
      const bool tuned_drafter = tuned && fs::exists(dir / ("fashion_drafter_" + n + ".pth"), ec);
      files.drafter = d + (tuned_drafter ? "/fashion_drafter_" + n + ".pth" : std::string("/fashion_drafter.pth"));
      files.refiner = d + (tuned ? "/fashion_refiner_" + n + ".pth" : std::string("/fashion_refiner.pth"));
      return files;
    }
    where += (where.empty() ? "" : ", ") + dir.lexically_normal().string();
  }
  throw Error("the built-in Fashion-MNIST models are not found (looked for fashion_drafter.pth in: " +
              (where.empty() ? std::string("nowhere") : where) + "; set VARCODE_MODELS to their directory)");
}

}  // namespace varcode
