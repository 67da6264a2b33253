// The C API (include/varcode.h) over the C++ API: handles own C++ objects, every entry point turns
// exceptions into a status and a message.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api/error_kind.hpp"
#include "varcode.h"
#include "varcode/generator.hpp"
#include "varcode/inputs.hpp"
#include "varcode/io.hpp"
#include "varcode/model_info.hpp"
#include "varcode/runtime.hpp"
#include "varcode/vqvae.hpp"

using varcode::api::ErrorKind;
using varcode::api::Failure;

struct varcode_cancel {
  std::atomic<bool> flag{false};
};

namespace {

thread_local std::string t_last_error;

// The per-handle message: a handle may be used by several threads at once.
struct ErrorSlot {
  mutable std::mutex mu;
  std::string message;
  void set(const std::string& m) {
    std::lock_guard<std::mutex> lock(mu);
    message = m;
  }
};

varcode_status status_of(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::invalid_argument:
      return VARCODE_ERROR_INVALID_ARGUMENT;
    case ErrorKind::file:
      return VARCODE_ERROR_FILE;
    case ErrorKind::cancelled:
      return VARCODE_ERROR_CANCELLED;
    case ErrorKind::out_of_memory:
      return VARCODE_ERROR_OUT_OF_MEMORY;
    case ErrorKind::runtime:
      return VARCODE_ERROR_RUNTIME;
  }
  return VARCODE_ERROR_RUNTIME;
}

varcode_status fail(ErrorSlot* slot, varcode_status status, const std::string& message) {
  t_last_error = message;
  if (slot) slot->set(message);
  return status;
}

// Thrown by the progress wrapper when the application's callback asks to stop.
struct CallbackCancel {};

// Runs `body` (returning nothing), mapping what it throws onto a status.
template <class Body>
varcode_status guarded(ErrorSlot* slot, const std::vector<std::string>& files, const varcode_cancel* cancel,
                       Body&& body) {
  try {
    body();
    return VARCODE_OK;
  } catch (const CallbackCancel&) {
    return fail(slot, VARCODE_ERROR_CANCELLED, "generation cancelled by the progress callback");
  } catch (...) {
    const Failure f = varcode::api::classify_current_exception(files, cancel && cancel->flag.load());
    return fail(slot, status_of(f.kind), f.message);
  }
}

std::string str_or_empty(const char* s) { return s ? std::string(s) : std::string(); }

varcode::ComputeDType compute_dtype_of(varcode_dtype dt) {
  switch (dt) {
    case VARCODE_DTYPE_AUTO:
      return varcode::ComputeDType::automatic;
    case VARCODE_DTYPE_F32:
      return varcode::ComputeDType::f32;
    case VARCODE_DTYPE_BF16:
      return varcode::ComputeDType::bf16;
    default:
      break;
  }
  throw varcode::Error("dtype: expected VARCODE_DTYPE_AUTO, VARCODE_DTYPE_F32 or VARCODE_DTYPE_BF16, got " +
                       std::to_string(static_cast<int>(dt)));
}

// What varcode_result points into.
struct ResultBox : varcode_result {
  varcode::Tensor tokens_t, pixels_t;  // [B, L] i64, [B, 3, H, W] f32
  std::vector<uint8_t> rgb;            // [B, H, W, 3]
};

varcode_result* make_result(const varcode::Tensor& tokens, const varcode::Tensor& pixels,
                            const varcode::StageSeconds& seconds) {
  auto* r = new ResultBox();
  r->tokens_t = tokens;
  r->pixels_t = pixels;
  r->num_images = pixels.dim(0);
  r->height = static_cast<int>(pixels.dim(2));
  r->width = static_cast<int>(pixels.dim(3));
  r->num_tokens = tokens.dim(1);
  r->rgb.resize(static_cast<size_t>(pixels.numel()));
  varcode::images_to_rgb8(pixels, r->rgb.data());
  r->tokens = r->tokens_t.data<int64_t>();
  r->pixels = r->pixels_t.data<float>();
  r->rgb8 = r->rgb.data();
  r->seconds_drafter = seconds.drafter;
  r->seconds_refiner = seconds.refiner;
  r->seconds_vae = seconds.vae;
  return r;
}

}  // namespace

struct varcode_generator {
  varcode::Generator gen;
  std::vector<std::string> class_names;
  ErrorSlot error;
};

struct varcode_vqvae {
  varcode::VqvaeModel vae;
  ErrorSlot error;
};

extern "C" {

#define VARCODE_STR_(x) #x
#define VARCODE_STR(x) VARCODE_STR_(x)
const char* varcode_version(void) {
  return VARCODE_STR(VARCODE_VERSION_MAJOR) "." VARCODE_STR(VARCODE_VERSION_MINOR) "." VARCODE_STR(
      VARCODE_VERSION_PATCH);
}
int varcode_version_number(void) {
  return VARCODE_VERSION_MAJOR * 10000 + VARCODE_VERSION_MINOR * 100 + VARCODE_VERSION_PATCH;
}

const char* varcode_status_name(varcode_status status) {
  switch (status) {
    case VARCODE_OK:
      return "ok";
    case VARCODE_ERROR_INVALID_ARGUMENT:
      return "invalid argument";
    case VARCODE_ERROR_FILE:
      return "file";
    case VARCODE_ERROR_CANCELLED:
      return "cancelled";
    case VARCODE_ERROR_OUT_OF_MEMORY:
      return "out of memory";
    case VARCODE_ERROR_RUNTIME:
      return "runtime";
    default:
      break;
  }
  return "unknown";
}

const char* varcode_last_error(void) { return t_last_error.c_str(); }

varcode_status varcode_set_num_threads(int threads) {
  if (threads < 0)
    return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "threads must be >= 0, got " + std::to_string(threads));
  return guarded(nullptr, {}, nullptr, [&] { varcode::set_num_threads(threads); });
}

varcode_cancel* varcode_cancel_new(void) { return new (std::nothrow) varcode_cancel(); }
void varcode_cancel_raise(varcode_cancel* flag) {
  if (flag) flag->flag.store(true);
}
void varcode_cancel_reset(varcode_cancel* flag) {
  if (flag) flag->flag.store(false);
}
int varcode_cancel_raised(const varcode_cancel* flag) { return flag && flag->flag.load() ? 1 : 0; }
void varcode_cancel_free(varcode_cancel* flag) { delete flag; }

varcode_status varcode_generator_open(const varcode_model_files* files, varcode_dtype dtype, varcode_generator** out) {
  return varcode_generator_open_on(files, dtype, nullptr, out);
}

int varcode_cuda_device_count(void) {
  try {
    int n = 0;
    for (const varcode::GpuInfo& g : varcode::cuda_gpus())
      if (varcode::cuda_unavailable_reason(g.index).empty()) ++n;
    return n;
  } catch (...) {
    return 0;
  }
}

varcode_status varcode_generator_open_on(const varcode_model_files* files, varcode_dtype dtype, const char* device,
                                         varcode_generator** out) {
  if (!out) return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_generator_open: out is NULL");
  *out = nullptr;
  if (!files) return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_generator_open: files is NULL");
  varcode::ModelFiles mf;
  mf.vae = str_or_empty(files->vae);
  mf.model = str_or_empty(files->model);
  mf.drafter = str_or_empty(files->drafter);
  mf.refiner = str_or_empty(files->refiner);
  mf.draft_steps = files->draft_steps;
  if (mf.vae.empty()) return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_generator_open: no vae file");
  const bool pair = !mf.drafter.empty() || !mf.refiner.empty();
  if (pair && !mf.model.empty())
    return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "give either model or drafter/refiner, not both");
  if (!pair && mf.model.empty())
    return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "no model given: model, or drafter with refiner");
  if (pair && (mf.drafter.empty() || mf.refiner.empty()))
    return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "collaborative decoding needs both drafter and refiner");
  if (pair && mf.draft_steps <= 0)
    return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT,
                "draft_steps: expected the drafter's scale count (1 .. SN-1) with a pair, got " +
                    std::to_string(mf.draft_steps));
  return guarded(nullptr, {mf.vae, mf.model, mf.drafter, mf.refiner}, nullptr, [&] {
    auto handle = std::make_unique<varcode_generator>();
    handle->gen =
        varcode::Generator::open(mf, compute_dtype_of(dtype), varcode::choose_device(device ? device : "cpu"));
    const std::string& names_of = mf.model.empty() ? mf.drafter : mf.model;
    if (names_of.rfind("random:", 0) != 0)
      handle->class_names = varcode::load_class_names(names_of, handle->gen.num_classes());
    *out = handle.release();
  });
}

varcode_status varcode_generator_open_builtin(const char* models_dir, varcode_dtype dtype, varcode_generator** out) {
  if (!out) return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_generator_open_builtin: out is NULL");
  *out = nullptr;
  varcode::ModelFiles mf;
  try {
    mf = varcode::builtin_model_files(models_dir ? std::vector<std::string>{models_dir} : std::vector<std::string>{});
  } catch (const std::exception& e) {
    return fail(nullptr, VARCODE_ERROR_FILE, e.what());
  }
  const varcode_model_files files{mf.vae.c_str(), nullptr, mf.drafter.c_str(), mf.refiner.c_str(), mf.draft_steps};
  return varcode_generator_open(&files, dtype, out);
}

void varcode_generator_free(varcode_generator* gen) { delete gen; }

const char* varcode_generator_last_error(const varcode_generator* gen) {
  if (!gen) return "no generator";
  // Copied to the calling thread so that a concurrent failure cannot free it under the reader.
  std::lock_guard<std::mutex> lock(gen->error.mu);
  thread_local std::string copy;
  copy = gen->error.message;
  return copy.c_str();
}

varcode_status varcode_generator_get_info(const varcode_generator* gen, varcode_generator_info* out) {
  if (!gen || !out) return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_generator_get_info: NULL argument");
  out->collaborative = gen->gen.collaborative() ? 1 : 0;
  out->draft_steps = gen->gen.draft_steps();
  out->num_classes = gen->gen.num_classes();
  out->num_scales = gen->gen.num_scales();
  out->image_size = gen->gen.image_size();
  out->total_tokens = gen->gen.total_tokens();
  out->compute_dtype = gen->gen.compute_dtype() == varcode::DType::bf16 ? VARCODE_DTYPE_BF16 : VARCODE_DTYPE_F32;
  return VARCODE_OK;
}

const char* varcode_generator_class_name(const varcode_generator* gen, int label) {
  if (!gen || label < 0 || static_cast<size_t>(label) >= gen->class_names.size()) return nullptr;
  return gen->class_names[static_cast<size_t>(label)].c_str();
}

varcode_status varcode_generator_parse_classes(varcode_generator* gen, const char* text, int* labels, size_t capacity,
                                               size_t* count) {
  if (!gen) return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_generator_parse_classes: gen is NULL");
  if (!text || !count || (capacity > 0 && !labels))
    return fail(&gen->error, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_generator_parse_classes: NULL argument");
  return guarded(&gen->error, {}, nullptr, [&] {
    const std::vector<int> parsed = varcode::parse_classes(text, "classes", gen->gen.num_classes(), gen->class_names);
    *count = parsed.size();
    if (parsed.size() > capacity)
      throw varcode::Error("classes: '" + std::string(text) + "' gives " + std::to_string(parsed.size()) +
                           " labels, more than the capacity " + std::to_string(capacity));
    std::copy(parsed.begin(), parsed.end(), labels);
  });
}

varcode_status varcode_sampling_defaults(const varcode_generator* gen, varcode_sampling* out) {
  if (!gen || !out) return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_sampling_defaults: NULL argument");
  const varcode::SamplingOptions s = gen->gen.default_sampling();
  std::memset(out, 0, sizeof(*out));
  out->cfg = s.cfg;
  out->top_k = s.top_k;
  out->top_p = s.top_p;
  out->smooth = s.smooth ? 1 : 0;
  out->num_temperatures = static_cast<int>(std::min<size_t>(s.temperature.size(), VARCODE_MAX_SCALES));
  for (int i = 0; i < out->num_temperatures; ++i) out->temperature[i] = s.temperature[static_cast<size_t>(i)];
  return VARCODE_OK;
}

}  // extern "C"

namespace {

varcode::SamplingOptions sampling_of(const varcode_sampling& s) {
  if (s.num_temperatures < 1 || s.num_temperatures > VARCODE_MAX_SCALES)
    throw varcode::Error("sampling: num_temperatures must be in [1, " + std::to_string(VARCODE_MAX_SCALES) + "], got " +
                         std::to_string(s.num_temperatures));
  varcode::SamplingOptions o;
  o.cfg = s.cfg;
  o.top_k = s.top_k;
  o.top_p = s.top_p;
  o.smooth = s.smooth != 0;
  o.temperature.assign(s.temperature, s.temperature + s.num_temperatures);
  return o;
}

varcode::ProgressFn progress_of(varcode_progress_fn fn, void* user_data) {
  if (!fn) return {};
  return [fn, user_data](const varcode::ProgressEvent& e) {
    const varcode_progress_event ev{e.stage.c_str(), e.scale, e.num_scales, e.images_done, e.images_total};
    if (fn(&ev, user_data) != 0) throw CallbackCancel{};
  };
}

}  // namespace

extern "C" {

varcode_status varcode_generate(varcode_generator* gen, const varcode_generate_request* request,
                                varcode_progress_fn progress, void* user_data, const varcode_cancel* cancel,
                                varcode_result** out) {
  if (out) *out = nullptr;
  if (!gen) return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_generate: gen is NULL");
  if (!request || !out) return fail(&gen->error, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_generate: NULL argument");
  if (request->num_images > 0 && !request->classes)
    return fail(&gen->error, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_generate: classes is NULL");
  return guarded(&gen->error, {}, cancel, [&] {
    varcode::GenerateRequest req;
    req.classes.assign(request->classes, request->classes + request->num_images);
    req.seed = request->seed;
    req.first_index = request->first_index;
    if (request->image_indices)
      req.image_indices.assign(request->image_indices, request->image_indices + request->num_images);
    if (request->sampling) req.sampling = sampling_of(*request->sampling);
    req.batch = request->batch;
    const varcode::GenerateResult res =
        gen->gen.generate(req, progress_of(progress, user_data), cancel ? &cancel->flag : nullptr);
    *out = make_result(res.tokens, res.images, res.seconds);
  });
}

varcode_status varcode_edit(varcode_generator* gen, const varcode_edit_request* request, varcode_progress_fn progress,
                            void* user_data, const varcode_cancel* cancel, varcode_result** out) {
  if (out) *out = nullptr;
  if (!gen) return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_edit: gen is NULL");
  if (!request || !out || !request->rgb8)
    return fail(&gen->error, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_edit: NULL argument");
  const int H = request->height, W = request->width, side = gen->gen.image_size();
  return guarded(&gen->error, {}, cancel, [&] {
    varcode::EditRequest req;
    req.image = varcode::picture_from_rgb8(request->rgb8, H, W, side).reshape({1, 3, side, side});
    varcode::Tensor mask;  // [h, w] at the picture's resolution
    switch (request->mask_kind) {
      case VARCODE_MASK_ARRAY:
        if (!request->mask || request->mask_height <= 0 || request->mask_width <= 0)
          throw varcode::Error("mask: expected a float mask [H, W] (1 = regenerate), got none");
        mask = varcode::Tensor::empty(varcode::DType::f32, {request->mask_height, request->mask_width});
        std::memcpy(mask.raw(), request->mask, mask.nbytes());
        break;
      case VARCODE_MASK_BOX:
        mask = varcode::box_mask(H, W, request->box[0], request->box[1], request->box[2], request->box[3], "box");
        break;
      case VARCODE_MASK_OUTPAINT:
        mask = varcode::outpaint_mask(H, W, request->outpaint_margin, "outpaint");
        break;
      default:
        throw varcode::Error("mask_kind: expected VARCODE_MASK_ARRAY, _BOX or _OUTPAINT");
    }
    req.mask = varcode::fit_edit_mask(mask, H, W, side, "mask");
    req.class_label = request->class_label;
    req.seed = request->seed;
    if (request->sampling) req.sampling = sampling_of(*request->sampling);
    const varcode::GenerateResult res =
        gen->gen.edit(req, progress_of(progress, user_data), cancel ? &cancel->flag : nullptr);
    *out = make_result(res.tokens, res.images, res.seconds);
  });
}

void varcode_result_free(varcode_result* result) { delete static_cast<ResultBox*>(result); }

varcode_status varcode_vqvae_open(const char* path, varcode_vqvae** out) {
  if (!out) return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_vqvae_open: out is NULL");
  *out = nullptr;
  if (!path || !*path) return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_vqvae_open: no path");
  return guarded(nullptr, {path}, nullptr, [&] {
    auto handle = std::make_unique<varcode_vqvae>();
    handle->vae = varcode::VqvaeModel::open(path);
    *out = handle.release();
  });
}

void varcode_vqvae_free(varcode_vqvae* vae) { delete vae; }

const char* varcode_vqvae_last_error(const varcode_vqvae* vae) {
  if (!vae) return "no VQ-VAE";
  std::lock_guard<std::mutex> lock(vae->error.mu);
  thread_local std::string copy;
  copy = vae->error.message;
  return copy.c_str();
}

int varcode_vqvae_vocab(const varcode_vqvae* vae) { return vae ? vae->vae.vocab() : 0; }

varcode_status varcode_vqvae_decode(varcode_vqvae* vae, const int64_t* tokens, int64_t num_images, int64_t num_tokens,
                                    varcode_result** out) {
  if (out) *out = nullptr;
  if (!vae) return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_vqvae_decode: vae is NULL");
  if (!tokens || !out || num_images <= 0 || num_tokens <= 0)
    return fail(&vae->error, VARCODE_ERROR_INVALID_ARGUMENT,
                "varcode_vqvae_decode: expected tokens [B, L] with B, L > 0 and an out pointer");
  return guarded(&vae->error, {}, nullptr, [&] {
    varcode::Tensor t = varcode::Tensor::empty(varcode::DType::i64, {num_images, num_tokens});  // [B, L]
    std::memcpy(t.raw(), tokens, t.nbytes());
    const varcode::Tensor images = vae->vae.decode_tokens(t);  // [B, 3, H, W]
    *out = make_result(t, images, {});
  });
}

varcode_status varcode_vqvae_encode(varcode_vqvae* vae, const uint8_t* rgb8, int height, int width, int size,
                                    varcode_result** out) {
  if (out) *out = nullptr;
  if (!vae) return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_vqvae_encode: vae is NULL");
  if (!rgb8 || !out) return fail(&vae->error, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_vqvae_encode: NULL argument");
  if (size < 0)
    return fail(&vae->error, VARCODE_ERROR_INVALID_ARGUMENT, "size: expected >= 0, got " + std::to_string(size));
  return guarded(&vae->error, {}, nullptr, [&] {
    if (!vae->vae.can_encode()) throw varcode::Error(vae->vae.path() + ": this VQ-VAE file has no encoder");
    const int side = size > 0 ? size : height == width ? height : vae->vae.image_size_for_tokens(680);
    vae->vae.schedule_for_image_size(side);  // a clear error for a side no schedule has
    varcode::Tensor x = varcode::picture_from_rgb8(rgb8, height, width, side);  // [3, S, S] in [0, 1]
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = x.data<float>()[i] * 2.0f - 1.0f;
    const varcode::EncodeResult r = vae->vae.encode(x);
    *out = make_result(r.tokens, r.reconstruction, {});
  });
}

varcode_status varcode_inspect(const char* path, char** json_out) {
  if (json_out) *json_out = nullptr;
  if (!path || !json_out) return fail(nullptr, VARCODE_ERROR_INVALID_ARGUMENT, "varcode_inspect: NULL argument");
  return guarded(nullptr, {path}, nullptr, [&] {
    const std::string json = varcode::model_info_json(varcode::inspect_model(path));
    char* s = static_cast<char*>(std::malloc(json.size() + 1));
    if (!s) throw std::bad_alloc();
    std::memcpy(s, json.c_str(), json.size() + 1);
    *json_out = s;
  });
}

void varcode_string_free(char* s) { std::free(s); }

}  // extern "C"
