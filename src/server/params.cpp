#include "server/params.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <set>

#include "varcode/error.hpp"
#include "varcode/io.hpp"
#include "varcode/vqvae.hpp"

namespace varcode::server {

namespace {

using json = nlohmann::json;

// Bounds that keep a request meaningful; the engine checks the rest.
constexpr double kMaxCfg = 50.0;
constexpr double kMaxTemperature = 100.0;
constexpr int kMaxTopK = 1 << 20;

std::string shown(const json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

// Reads fields of a JSON body (typed values) or of a form (every value a string).
class Fields {
 public:
  Fields(const json& obj, bool form) : obj_(obj), form_(form) {}

  bool has(const std::string& k) const { return obj_.contains(k) && !obj_.at(k).is_null(); }
  const json& at(const std::string& k) const { return obj_.at(k); }

  double number(const std::string& k, double lo, double hi) const {
    const json& v = obj_.at(k);
    double x = 0;
    if (v.is_number()) {
      x = v.get<double>();
    } else if (form_ && v.is_string() && parse_double(v.get<std::string>(), &x)) {
    } else {
      throw BadRequest(k, k + ": expected a number in [" + fmt(lo) + ", " + fmt(hi) + "], got " + shown(v));
    }
    if (!std::isfinite(x) || x < lo || x > hi)
      throw BadRequest(k, k + ": expected a number in [" + fmt(lo) + ", " + fmt(hi) + "], got " + shown(v));
    return x;
  }

  int integer(const std::string& k, int lo, int hi) const {
    const json& v = obj_.at(k);
    const std::string want =
        k + ": expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + shown(v);
    double x = 0;
    if (v.is_number()) {
      x = v.get<double>();
    } else if (!(form_ && v.is_string() && parse_double(v.get<std::string>(), &x))) {
      throw BadRequest(k, want);
    }
    if (!std::isfinite(x) || x != std::floor(x) || x < lo || x > hi) throw BadRequest(k, want);
    return static_cast<int>(x);
  }

  bool boolean(const std::string& k) const {
    const json& v = obj_.at(k);
    if (v.is_boolean()) return v.get<bool>();
    if (form_ && v.is_string()) {
      const std::string s = v.get<std::string>();
      if (s == "true" || s == "1" || s == "on") return true;
      if (s == "false" || s == "0" || s == "off" || s.empty()) return false;
    }
    throw BadRequest(k, k + ": expected true or false, got " + shown(v));
  }

  // A uint64 as a JSON integer or a decimal string (JavaScript numbers stop being exact at 2^53).
  uint64_t seed(const std::string& k) const {
    const json& v = obj_.at(k);
    const std::string want = k + ": expected an integer in [0, 18446744073709551615], got " + shown(v);
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer()) {
      if (v.get<int64_t>() < 0) throw BadRequest(k, want);
      return static_cast<uint64_t>(v.get<int64_t>());
    }
    if (v.is_string()) {
      const std::string s = v.get<std::string>();
      if (s.empty() || s.size() > 20 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        throw BadRequest(k, want);
      errno = 0;
      const unsigned long long x = std::strtoull(s.c_str(), nullptr, 10);
      if (errno == ERANGE) throw BadRequest(k, want);
      return x;
    }
    throw BadRequest(k, want);
  }

  std::string text(const std::string& k) const {
    const json& v = obj_.at(k);
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
    throw BadRequest(k, k + ": expected a string, got " + shown(v));
  }

  void reject_unknown(const std::set<std::string>& known) const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it)
      if (!known.count(it.key())) {
        std::string list;
        for (const std::string& n : known) list += (list.empty() ? "" : ", ") + n;
        throw BadRequest(it.key(), it.key() + ": unknown field (known: " + list + ")");
      }
  }

  bool form() const { return form_; }

 private:
  static bool parse_double(const std::string& s, double* out) {
    if (s.empty()) return false;
    char* end = nullptr;
    errno = 0;
    *out = std::strtod(s.c_str(), &end);
    return end == s.c_str() + s.size() && errno == 0;
  }
  static std::string fmt(double x) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", x);
    return b;
  }

  const json& obj_;
  bool form_;
};

// The sampling fields over the pipeline's defaults, the hand-over point, the seed.
void read_common(const Fields& f, const Generator& gen, WorkSpec* w) {
  w->sampling = gen.default_sampling();
  SamplingOptions& s = w->sampling;
  if (f.has("cfg")) s.cfg = f.number("cfg", 0.0, kMaxCfg);
  if (f.has("top_k")) s.top_k = f.integer("top_k", 0, kMaxTopK);
  if (f.has("top_p")) s.top_p = f.number("top_p", 0.0, 1.0);
  if (f.has("temperature")) {
    const json& v = f.at("temperature");
    const std::string want = "temperature: expected a number in (0, 100] or a list of " +
                             std::to_string(gen.num_scales()) + " of them (one per scale), got " + shown(v);
    std::vector<json> items;
    if (v.is_array()) {
      items.assign(v.begin(), v.end());
    } else if (f.form() && v.is_string()) {
      const std::string t = v.get<std::string>();
      size_t pos = 0;
      while (true) {
        const size_t comma = t.find(',', pos);
        items.emplace_back(t.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
    } else {
      items = {v};
    }
    if (items.size() != 1 && static_cast<int>(items.size()) != gen.num_scales()) throw BadRequest("temperature", want);
    s.temperature.clear();
    for (const json& item : items) {
      json one = json::object({{"temperature", item}});
      const double t = Fields(one, f.form()).number("temperature", 0.0, kMaxTemperature);
      if (!(t > 0)) throw BadRequest("temperature", want);
      s.temperature.push_back(t);
    }
  }
  if (f.has("smooth")) s.smooth = f.boolean("smooth");
  if (f.has("draft_steps")) {
    if (!gen.collaborative())
      throw BadRequest("draft_steps",
                       "draft_steps: this server runs a single VAR model; draft steps exist only for a CoDe pair");
    w->draft_steps = f.integer("draft_steps", 1, gen.num_scales() - 1);
  }
  w->seed = f.has("seed") ? f.seed("seed") : random_seed();
}

void check_response_format(const Fields& f) {
  if (f.has("response_format") && f.text("response_format") != "b64_json")
    throw BadRequest("response_format",
                     "response_format: only \"b64_json\" is supported (the images are in the answer)");
}

void check_size(const Fields& f, const Generator& gen) {
  if (!f.has("size")) return;
  const std::string want = std::to_string(gen.image_size()) + "x" + std::to_string(gen.image_size());
  if (f.text("size") != want)
    throw BadRequest("size", "size: this model makes " + want + " images, got \"" + f.text("size") + "\"");
}

std::vector<int> read_classes(const Fields& f, const std::string& field, const ServedModel& model) {
  if (!f.has(field)) throw BadRequest(field, field + ": required (a class name or number)");
  const std::string text = f.text(field);
  try {
    return model.parse_classes(text, field);
  } catch (const Error& e) {
    throw BadRequest(field, e.what());
  }
}

}  // namespace

uint64_t random_seed() {
  std::random_device rd;
  return rd() | (static_cast<uint64_t>(rd()) << 32);
}

WorkSpec parse_generation(const json& body, const ServedModel& model, const ServerOptions& opt) {
  if (!body.is_object()) throw BadRequest("body", "body: expected a JSON object, got " + shown(body));
  const Fields f(body, false);
  f.reject_unknown({"prompt", "n", "response_format", "size", "model", "user", "seed", "cfg", "top_k", "top_p",
                    "temperature", "smooth", "draft_steps"});
  const Generator& gen = model.generator;
  WorkSpec w;
  const std::vector<int> classes = read_classes(f, "prompt", model);
  const int n = f.has("n") ? f.integer("n", 1, opt.max_images_per_request) : 1;
  if (static_cast<int64_t>(classes.size()) * n > opt.max_images_per_request)
    throw BadRequest("n", "n: " + std::to_string(classes.size()) + " classes x n = " + std::to_string(n) +
                              " would make " + std::to_string(classes.size() * static_cast<size_t>(n)) +
                              " images; at most " + std::to_string(opt.max_images_per_request) + " per request");
  for (int c : classes) w.classes.insert(w.classes.end(), static_cast<size_t>(n), c);
  check_response_format(f);
  check_size(f, gen);
  if (f.has("model")) (void)f.text("model");  // OpenAI clients always send one: any name is this server's model
  if (f.has("user")) (void)f.text("user");
  read_common(f, gen, &w);
  return w;
}

WorkSpec parse_edit(const EditUpload& up, const ServedModel& model, const ServerOptions& /*opt*/) {
  const Fields f(up.fields, true);
  f.reject_unknown({"image", "mask", "box", "outpaint", "class", "prompt", "n", "response_format", "size", "model",
                    "user", "seed", "cfg", "top_k", "top_p", "temperature", "smooth", "draft_steps"});
  const Generator& gen = model.generator;
  const int side = gen.image_size();
  WorkSpec w;
  w.edit = true;
  if (f.has("class") && f.has("prompt")) throw BadRequest("class", "class: give class or prompt, not both");
  const std::string class_field = f.has("prompt") ? "prompt" : "class";
  const std::vector<int> cls = read_classes(f, class_field, model);
  if (cls.size() != 1)
    throw BadRequest(class_field, class_field + ": expected one class, got " + std::to_string(cls.size()));
  w.classes = cls;
  if (f.has("n") && f.integer("n", 1, 1) != 1) throw BadRequest("n", "n: an edit makes one image");
  check_response_format(f);
  check_size(f, gen);
  read_common(f, gen, &w);

  if (!up.has_image) throw BadRequest("image", "image: required (a PNG file part)");
  Tensor pic;  // [3, H, W]
  try {
    pic = decode_png(reinterpret_cast<const uint8_t*>(up.image_png.data()), up.image_png.size(), "image");
  } catch (const Error& e) {
    throw BadRequest("image", e.what());
  }
  const int orig_h = static_cast<int>(pic.dim(1)), orig_w = static_cast<int>(pic.dim(2));
  w.image = VqvaeModel::fit_image(pic, side).reshape({1, 3, side, side});  // [1, 3, S, S]

  const int given = (up.has_mask ? 1 : 0) + (f.has("box") ? 1 : 0) + (f.has("outpaint") ? 1 : 0);
  if (given != 1)
    throw BadRequest(given == 0          ? "mask"
                     : f.has("outpaint") ? "outpaint"
                                         : "box",
                     "mask: give exactly one of mask (a PNG part), box or outpaint, got " +
                         (given == 0 ? std::string("none") : std::to_string(given)));
  Tensor m;  // [H, W] at the picture's or a square size, 1 = regenerate
  if (up.has_mask) {
    Tensor png;  // [3, h, w]
    try {
      png = decode_png(reinterpret_cast<const uint8_t*>(up.mask_png.data()), up.mask_png.size(), "mask");
    } catch (const Error& e) {
      throw BadRequest("mask", e.what());
    }
    const int64_t H = png.dim(1), W = png.dim(2);
    // As `varcode edit --mask`: non-black regenerates; the picture's size follows its crop, another
    // size must be square.
    if (!(H == orig_h && W == orig_w) && H != W)
      throw BadRequest("mask", "mask: a mask of " + std::to_string(W) + "x" + std::to_string(H) +
                                   " cannot be mapped onto the picture (" + std::to_string(orig_w) + "x" +
                                   std::to_string(orig_h) + "): give it the picture's size or make it square");
    m = Tensor::empty(DType::f32, {H, W});  // [H, W]
    const float* p = png.data<float>();
    for (int64_t i = 0; i < H * W; ++i) m.data<float>()[i] = (p[i] + p[H * W + i] + p[2 * H * W + i]) > 0 ? 1.0f : 0.0f;
  } else if (f.has("box")) {
    const std::string box = f.text("box");
    std::vector<int> b;
    size_t pos = 0;
    while (pos <= box.size()) {
      const size_t comma = box.find(',', pos);
      json one = json::object({{"box", box.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos)}});
      try {
        b.push_back(Fields(one, true).integer("box", 0, 1 << 16));
      } catch (const BadRequest&) {
        throw BadRequest("box", "box: expected X0,Y0,X1,Y1 in the picture's pixels, got \"" + box + "\"");
      }
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    if (b.size() != 4)
      throw BadRequest("box", "box: expected X0,Y0,X1,Y1 in the picture's pixels, got \"" + box + "\"");
    if (b[2] > orig_w || b[3] > orig_h || b[0] >= b[2] || b[1] >= b[3])
      throw BadRequest("box", "box: " + box + " is not a non-empty rectangle inside the picture (0,0," +
                                  std::to_string(orig_w) + "," + std::to_string(orig_h) + ")");
    m = Tensor::zeros(DType::f32, {orig_h, orig_w});  // [H, W]
    for (int y = b[1]; y < b[3]; ++y)
      for (int x = b[0]; x < b[2]; ++x) m.data<float>()[static_cast<int64_t>(y) * orig_w + x] = 1.0f;
  } else {
    const int limit = (std::min(orig_h, orig_w) - 1) / 2;
    if (limit < 1) throw BadRequest("outpaint", "outpaint: the picture is too small to keep a centre");
    const int g = f.integer("outpaint", 1, limit);
    m = Tensor::zeros(DType::f32, {orig_h, orig_w});  // [H, W]
    for (int y = 0; y < orig_h; ++y)
      for (int x = 0; x < orig_w; ++x)
        if (y < g || x < g || y >= orig_h - g || x >= orig_w - g)
          m.data<float>()[static_cast<int64_t>(y) * orig_w + x] = 1.0f;
  }
  w.mask = fit_mask(m, side);  // [S, S]
  double regen = 0;
  for (int64_t i = 0; i < w.mask.numel(); ++i) regen += w.mask.data<float>()[i];
  if (regen == 0)
    throw BadRequest(up.has_mask ? "mask" : "box",
                     "mask: regenerates nothing (it is empty after mapping onto the picture)");
  return w;
}

}  // namespace varcode::server
