/* The C API (include/varcode.h), exercised from C11: every entry point, every error path, and the
 * results against the reference on a fixture.
 *   varcode_c_api_test contract   the shipped Fashion-MNIST pair: results, progress, cancellation,
 *                                 every error status and message
 *   varcode_c_api_test golden     ../shared/fixtures/tiny: tokens equal to the PyTorch reference's,
 *                                 images within 1e-3
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "varcode.h"

static int g_failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                            \
    }                                                                          \
  } while (0)

/* A call expected to fail with `status`; the thread's message must be non-empty and contain
 * `needle`, and (for a handle) the handle's message must be the same text. */
#define CHECK_FAILS(call, status, needle)                                                                              \
  do {                                                                                                                 \
    varcode_status st_ = (call);                                                                                       \
    if (st_ != (status) || strstr(varcode_last_error(), (needle)) == NULL) {                                           \
      fprintf(stderr, "%s:%d: %s: expected status '%s' with a message containing '%s', got '%s': %s\n", __FILE__,      \
              __LINE__, #call, varcode_status_name(status), (needle), varcode_status_name(st_), varcode_last_error()); \
      ++g_failures;                                                                                                    \
    }                                                                                                                  \
  } while (0)

static char g_models[1024];

static const char* model_path(const char* name) {
  static char buf[64][1100]; /* enough distinct paths for one check: none is reused while in use */
  static int next = 0;
  char* p = buf[next++ % 64];
  snprintf(p, sizeof(buf[0]), "%s/%s", g_models, name);
  return p;
}

/* ---- progress callbacks ---- */

typedef struct progress_log {
  int events, scale_events, vae_events, last_scale, cancel_at;
  int bad; /* an event out of order or with a bad field */
  varcode_cancel* raise_at_scale_2;
} progress_log;

static int log_progress(const varcode_progress_event* e, void* user_data) {
  progress_log* log = (progress_log*)user_data;
  ++log->events;
  if (strcmp(e->stage, "vae") == 0) {
    ++log->vae_events;
  } else {
    if (strcmp(e->stage, "drafter") != 0 && strcmp(e->stage, "refiner") != 0 && strcmp(e->stage, "var") != 0)
      log->bad = 1;
    if (e->scale < 0 || e->scale >= e->num_scales) log->bad = 1;
    ++log->scale_events;
    log->last_scale = e->scale;
    if (log->raise_at_scale_2 && e->scale == 2) varcode_cancel_raise(log->raise_at_scale_2);
  }
  if (e->images_total <= 0 || e->images_done < 0 || e->images_done >= e->images_total) log->bad = 1;
  return log->cancel_at >= 0 && log->events > log->cancel_at;
}

static int bytes_equal(const varcode_result* a, const varcode_result* b) {
  if (a->num_images != b->num_images || a->height != b->height || a->width != b->width ||
      a->num_tokens != b->num_tokens)
    return 0;
  const size_t n = (size_t)a->num_images * (size_t)a->height * (size_t)a->width * 3;
  return memcmp(a->rgb8, b->rgb8, n) == 0 &&
         memcmp(a->tokens, b->tokens, (size_t)a->num_images * (size_t)a->num_tokens * sizeof(int64_t)) == 0;
}

/* ---- the contract ---- */

static void check_version_and_status(void) {
  char want[64];
  snprintf(want, sizeof(want), "%d.%d.%d", VARCODE_VERSION_MAJOR, VARCODE_VERSION_MINOR, VARCODE_VERSION_PATCH);
  CHECK(strcmp(varcode_version(), want) == 0);
  CHECK(varcode_version_number() ==
        VARCODE_VERSION_MAJOR * 10000 + VARCODE_VERSION_MINOR * 100 + VARCODE_VERSION_PATCH);
  CHECK(strcmp(varcode_status_name(VARCODE_OK), "ok") == 0);
  CHECK(strcmp(varcode_status_name(VARCODE_ERROR_INVALID_ARGUMENT), "invalid argument") == 0);
  CHECK(strcmp(varcode_status_name(VARCODE_ERROR_FILE), "file") == 0);
  CHECK(strcmp(varcode_status_name(VARCODE_ERROR_CANCELLED), "cancelled") == 0);
  CHECK(strcmp(varcode_status_name(VARCODE_ERROR_OUT_OF_MEMORY), "out of memory") == 0);
  CHECK(strcmp(varcode_status_name(VARCODE_ERROR_RUNTIME), "runtime") == 0);
  CHECK(strcmp(varcode_status_name((varcode_status)42), "unknown") == 0);
  CHECK_FAILS(varcode_set_num_threads(-1), VARCODE_ERROR_INVALID_ARGUMENT, "threads");
  CHECK(varcode_set_num_threads(0) == VARCODE_OK);
}

static void check_open_errors(void) {
  varcode_generator* g = (varcode_generator*)&g; /* must be reset to NULL on failure */
  varcode_model_files f;
  CHECK_FAILS(varcode_generator_open(NULL, VARCODE_DTYPE_F32, &g), VARCODE_ERROR_INVALID_ARGUMENT, "files is NULL");
  CHECK(g == NULL);
  memset(&f, 0, sizeof(f));
  CHECK_FAILS(varcode_generator_open(&f, VARCODE_DTYPE_F32, NULL), VARCODE_ERROR_INVALID_ARGUMENT, "out is NULL");
  CHECK_FAILS(varcode_generator_open(&f, VARCODE_DTYPE_F32, &g), VARCODE_ERROR_INVALID_ARGUMENT, "no vae");
  f.vae = model_path("fashion_vae.pth");
  CHECK_FAILS(varcode_generator_open(&f, VARCODE_DTYPE_F32, &g), VARCODE_ERROR_INVALID_ARGUMENT, "no model");
  f.model = model_path("fashion_drafter.pth");
  f.drafter = model_path("fashion_drafter.pth");
  CHECK_FAILS(varcode_generator_open(&f, VARCODE_DTYPE_F32, &g), VARCODE_ERROR_INVALID_ARGUMENT, "not both");
  f.model = NULL;
  CHECK_FAILS(varcode_generator_open(&f, VARCODE_DTYPE_F32, &g), VARCODE_ERROR_INVALID_ARGUMENT, "both drafter and");
  f.refiner = model_path("fashion_refiner.pth");
  CHECK_FAILS(varcode_generator_open(&f, VARCODE_DTYPE_F32, &g), VARCODE_ERROR_INVALID_ARGUMENT, "draft_steps");
  f.draft_steps = 99;
  CHECK_FAILS(varcode_generator_open(&f, VARCODE_DTYPE_F32, &g), VARCODE_ERROR_INVALID_ARGUMENT, "99");
  CHECK(g == NULL);
  f.draft_steps = 3;
  CHECK_FAILS(varcode_generator_open(&f, (varcode_dtype)7, &g), VARCODE_ERROR_INVALID_ARGUMENT, "dtype");
  CHECK_FAILS(varcode_generator_open_on(&f, VARCODE_DTYPE_F32, "gpu", &g), VARCODE_ERROR_INVALID_ARGUMENT,
              "'gpu' is not a device");
  CHECK(g == NULL);
  if (varcode_cuda_device_count() == 0) /* where no GPU can run it, cuda is refused saying so */
    CHECK_FAILS(varcode_generator_open_on(&f, VARCODE_DTYPE_F32, "cuda", &g), VARCODE_ERROR_INVALID_ARGUMENT, "cuda");
  f.vae = model_path("no_such_vae.pth");
  CHECK_FAILS(varcode_generator_open(&f, VARCODE_DTYPE_F32, &g), VARCODE_ERROR_FILE, "no_such_vae.pth");
  f.vae = model_path("fashion_drafter.pth"); /* a VAR transformer given as the VQ-VAE */
  CHECK_FAILS(varcode_generator_open(&f, VARCODE_DTYPE_F32, &g), VARCODE_ERROR_FILE, "fashion_drafter.pth");
  f.vae = model_path("fashion_vae.pth");
  f.refiner = model_path("classes.txt"); /* not a model file at all */
  CHECK_FAILS(varcode_generator_open(&f, VARCODE_DTYPE_F32, &g), VARCODE_ERROR_FILE, "classes.txt");
  CHECK(g == NULL);
  CHECK_FAILS(varcode_generator_open_builtin(NULL, VARCODE_DTYPE_F32, NULL), VARCODE_ERROR_INVALID_ARGUMENT,
              "out is NULL");
  setenv("VARCODE_MODELS", "/nonexistent-varcode-models", 1);
  CHECK_FAILS(varcode_generator_open_builtin(g_models, VARCODE_DTYPE_F32, &g), VARCODE_ERROR_FILE,
              "/nonexistent-varcode-models");
  unsetenv("VARCODE_MODELS");
  CHECK(g == NULL);
  /* NULL handles */
  varcode_generator_free(NULL);
  CHECK(strcmp(varcode_generator_last_error(NULL), "no generator") == 0);
  varcode_generator_info info;
  CHECK_FAILS(varcode_generator_get_info(NULL, &info), VARCODE_ERROR_INVALID_ARGUMENT, "NULL");
  CHECK(varcode_generator_class_name(NULL, 0) == NULL);
  size_t count = 0;
  CHECK_FAILS(varcode_generator_parse_classes(NULL, "1", NULL, 0, &count), VARCODE_ERROR_INVALID_ARGUMENT,
              "gen is NULL");
  varcode_sampling s;
  CHECK_FAILS(varcode_sampling_defaults(NULL, &s), VARCODE_ERROR_INVALID_ARGUMENT, "NULL");
  varcode_result* r = NULL;
  varcode_generate_request req;
  memset(&req, 0, sizeof(req));
  CHECK_FAILS(varcode_generate(NULL, &req, NULL, NULL, NULL, &r), VARCODE_ERROR_INVALID_ARGUMENT, "gen is NULL");
  varcode_edit_request ereq;
  memset(&ereq, 0, sizeof(ereq));
  CHECK_FAILS(varcode_edit(NULL, &ereq, NULL, NULL, NULL, &r), VARCODE_ERROR_INVALID_ARGUMENT, "gen is NULL");
  varcode_result_free(NULL);
}

static void check_classes_and_info(varcode_generator* g) {
  varcode_generator_info info;
  CHECK(varcode_generator_get_info(g, &info) == VARCODE_OK);
  CHECK(info.collaborative == 1);
  CHECK(info.draft_steps == 3);
  CHECK(info.num_classes == 10);
  CHECK(info.num_scales == 6);
  CHECK(info.image_size == 32);
  CHECK(info.total_tokens == 130);
  CHECK(info.compute_dtype == VARCODE_DTYPE_F32);
  CHECK(varcode_generator_class_name(g, 7) != NULL && strcmp(varcode_generator_class_name(g, 7), "Sneaker") == 0);
  CHECK(varcode_generator_class_name(g, 10) == NULL);
  CHECK(varcode_generator_class_name(g, -1) == NULL);
  int labels[16];
  size_t count = 0;
  CHECK(varcode_generator_parse_classes(g, "sneaker, 0-2,t-shirt", labels, 16, &count) == VARCODE_OK);
  CHECK(count == 5 && labels[0] == 7 && labels[1] == 0 && labels[2] == 1 && labels[3] == 2 && labels[4] == 0);
  CHECK(varcode_generator_parse_classes(g, "all", labels, 16, &count) == VARCODE_OK && count == 10);
  CHECK_FAILS(varcode_generator_parse_classes(g, "all", labels, 4, &count), VARCODE_ERROR_INVALID_ARGUMENT, "capacity");
  CHECK(count == 10);
  CHECK_FAILS(varcode_generator_parse_classes(g, "bogus", labels, 16, &count), VARCODE_ERROR_INVALID_ARGUMENT,
              "'bogus' is not a class");
  CHECK(strstr(varcode_generator_last_error(g), "'bogus' is not a class") != NULL);
  CHECK_FAILS(varcode_generator_parse_classes(g, "12", labels, 16, &count), VARCODE_ERROR_INVALID_ARGUMENT,
              "outside the model's classes [0, 10)");
  CHECK_FAILS(varcode_generator_parse_classes(g, NULL, labels, 16, &count), VARCODE_ERROR_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(varcode_generator_parse_classes(g, "1", NULL, 16, &count), VARCODE_ERROR_INVALID_ARGUMENT, "NULL");
  varcode_sampling s;
  CHECK(varcode_sampling_defaults(g, &s) == VARCODE_OK);
  CHECK(s.cfg == 1.5 && s.top_k == 600 && s.top_p == 0.96 && s.smooth == 0);
  /* the built-in models' own defaults (models/sampling.json), not the published 1.1 throughout */
  CHECK(s.num_temperatures == 6 && s.temperature[0] == 1.2 && s.temperature[5] == 0.4);
}

static void check_generate(varcode_generator* g) {
  const int classes[2] = {7, 0};
  varcode_generate_request req;
  memset(&req, 0, sizeof(req));
  req.classes = classes;
  req.num_images = 2;
  req.seed = 5;
  varcode_result *a = NULL, *b = NULL, *c = NULL;
  progress_log log = {0, 0, 0, -1, -1, 0, NULL};
  CHECK(varcode_generate(g, &req, log_progress, &log, NULL, &a) == VARCODE_OK);
  if (!a) return;
  CHECK(a->num_images == 2 && a->height == 32 && a->width == 32 && a->num_tokens == 130);
  CHECK(a->seconds_drafter > 0 && a->seconds_refiner > 0 && a->seconds_vae > 0);
  CHECK(log.scale_events == 6 && log.vae_events == 1 && log.last_scale == 5 && !log.bad);
  /* rgb8 holds what a PNG of the pixels holds: clamp, x * 255 truncated */
  int bytes_ok = 1;
  for (int64_t i = 0; i < 2; ++i)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        for (int ch = 0; ch < 3; ++ch) {
          float v = a->pixels[((i * 3 + ch) * 32 + y) * 32 + x];
          v = isnan(v) ? 0.0f : v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
          if (a->rgb8[((i * 32 + y) * 32 + x) * 3 + ch] != (uint8_t)(v * 255.0f)) bytes_ok = 0;
        }
  CHECK(bytes_ok);
  int tokens_ok = 1;
  for (int64_t i = 0; i < 2 * 130; ++i) tokens_ok &= a->tokens[i] >= 0 && a->tokens[i] < 4096;
  CHECK(tokens_ok);
  /* the same seed gives the same bytes, whatever the batch */
  req.batch = 1;
  CHECK(varcode_generate(g, &req, NULL, NULL, NULL, &b) == VARCODE_OK);
  CHECK(b && bytes_equal(a, b));
  varcode_result_free(b);
  b = NULL;
  /* image 1 alone: first_index 1, or image_indices {1} */
  const int one_class[1] = {0};
  const uint32_t one_index[1] = {1};
  varcode_generate_request one;
  memset(&one, 0, sizeof(one));
  one.classes = one_class;
  one.num_images = 1;
  one.seed = 5;
  one.first_index = 1;
  CHECK(varcode_generate(g, &one, NULL, NULL, NULL, &b) == VARCODE_OK);
  one.first_index = 0;
  one.image_indices = one_index;
  CHECK(varcode_generate(g, &one, NULL, NULL, NULL, &c) == VARCODE_OK);
  if (b && c) {
    CHECK(bytes_equal(b, c));
    CHECK(memcmp(b->rgb8, a->rgb8 + 32 * 32 * 3, 32 * 32 * 3) == 0);
    CHECK(memcmp(b->tokens, a->tokens + 130, 130 * sizeof(int64_t)) == 0);
  }
  varcode_result_free(b);
  varcode_result_free(c);
  b = c = NULL;
  /* sampling given explicitly = the defaults */
  varcode_sampling s;
  varcode_sampling_defaults(g, &s);
  req.sampling = &s;
  CHECK(varcode_generate(g, &req, NULL, NULL, NULL, &b) == VARCODE_OK);
  CHECK(b && bytes_equal(a, b));
  varcode_result_free(b);
  b = NULL;

  /* cancellation: by the callback, by the flag raised before, by the flag raised during */
  progress_log stop = {0, 0, 0, -1, 2, 0, NULL};
  CHECK_FAILS(varcode_generate(g, &req, log_progress, &stop, NULL, &b), VARCODE_ERROR_CANCELLED, "cancelled");
  CHECK(b == NULL && stop.events == 3);
  varcode_cancel* flag = varcode_cancel_new();
  CHECK(flag != NULL && !varcode_cancel_raised(flag));
  varcode_cancel_raise(flag);
  CHECK(varcode_cancel_raised(flag));
  CHECK_FAILS(varcode_generate(g, &req, NULL, NULL, flag, &b), VARCODE_ERROR_CANCELLED, "cancelled");
  CHECK(strstr(varcode_generator_last_error(g), "cancelled") != NULL);
  varcode_cancel_reset(flag);
  progress_log during = {0, 0, 0, -1, -1, 0, flag};
  CHECK_FAILS(varcode_generate(g, &req, log_progress, &during, flag, &b), VARCODE_ERROR_CANCELLED, "cancelled");
  CHECK(during.last_scale == 2); /* scale 3 never started */
  varcode_cancel_reset(flag);
  /* ... and the generator is as good as before */
  CHECK(varcode_generate(g, &req, NULL, NULL, flag, &b) == VARCODE_OK);
  CHECK(b && bytes_equal(a, b));
  varcode_result_free(b);
  b = NULL;
  varcode_cancel_free(flag);
  varcode_cancel_free(NULL);
  varcode_cancel_raise(NULL);
  CHECK(varcode_cancel_raised(NULL) == 0);

  /* bad requests */
  CHECK_FAILS(varcode_generate(g, NULL, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(varcode_generate(g, &req, NULL, NULL, NULL, NULL), VARCODE_ERROR_INVALID_ARGUMENT, "NULL");
  varcode_generate_request bad = req;
  bad.classes = NULL;
  CHECK_FAILS(varcode_generate(g, &bad, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "classes is NULL");
  bad = req;
  bad.num_images = 0;
  CHECK_FAILS(varcode_generate(g, &bad, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "no classes");
  const int out_of_range[1] = {10};
  bad = req;
  bad.classes = out_of_range;
  bad.num_images = 1;
  CHECK_FAILS(varcode_generate(g, &bad, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "class 10");
  CHECK(strstr(varcode_generator_last_error(g), "class 10") != NULL);
  bad = req;
  bad.batch = -1;
  CHECK_FAILS(varcode_generate(g, &bad, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "batch");
  varcode_sampling t = s;
  bad = req;
  bad.sampling = &t;
  t.top_p = 2;
  CHECK_FAILS(varcode_generate(g, &bad, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "top-p");
  t = s;
  t.top_k = -1;
  CHECK_FAILS(varcode_generate(g, &bad, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "top-k");
  t = s;
  t.temperature[2] = 0;
  CHECK_FAILS(varcode_generate(g, &bad, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "temperature");
  t = s;
  t.num_temperatures = 4;
  CHECK_FAILS(varcode_generate(g, &bad, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "temperature");
  t.num_temperatures = 0;
  CHECK_FAILS(varcode_generate(g, &bad, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "num_temperatures");
  t.num_temperatures = VARCODE_MAX_SCALES + 1;
  CHECK_FAILS(varcode_generate(g, &bad, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "num_temperatures");
  CHECK(b == NULL);
#ifndef __SANITIZE_ADDRESS__ /* ASan aborts on an allocation it cannot serve instead of failing it */
  {
    /* 10^8 images: the result alone needs ~1.3 TB, which no allocation serves */
    const size_t huge = 100000000;
    int* many = (int*)calloc(huge, sizeof(int));
    if (many) {
      bad = req;
      bad.classes = many;
      bad.num_images = huge;
      CHECK_FAILS(varcode_generate(g, &bad, NULL, NULL, NULL, &b), VARCODE_ERROR_OUT_OF_MEMORY, "out of memory");
      free(many);
    }
  }
#endif

  /* editing the first picture */
  varcode_edit_request e;
  memset(&e, 0, sizeof(e));
  e.rgb8 = a->rgb8;
  e.height = 32;
  e.width = 32;
  e.mask_kind = VARCODE_MASK_BOX;
  e.box[0] = 8, e.box[1] = 8, e.box[2] = 24, e.box[3] = 24;
  e.class_label = 3;
  e.seed = 2;
  CHECK(varcode_edit(g, &e, NULL, NULL, NULL, &b) == VARCODE_OK);
  CHECK(b && b->num_images == 1 && b->height == 32 && b->num_tokens == 130);
  CHECK(varcode_edit(g, &e, NULL, NULL, NULL, &c) == VARCODE_OK);
  CHECK(b && c && bytes_equal(b, c));
  varcode_result_free(c);
  c = NULL;
  float mask[32 * 32];
  for (int i = 0; i < 32 * 32; ++i) mask[i] = (i / 32 >= 8 && i / 32 < 24 && i % 32 >= 8 && i % 32 < 24) ? 1.0f : 0.0f;
  e.mask_kind = VARCODE_MASK_ARRAY;
  e.mask = mask;
  e.mask_height = 32;
  e.mask_width = 32;
  CHECK(varcode_edit(g, &e, NULL, NULL, NULL, &c) == VARCODE_OK);
  CHECK(b && c && bytes_equal(b, c)); /* the box and its array are the same mask */
  varcode_result_free(b);
  varcode_result_free(c);
  b = c = NULL;
  e.mask_kind = VARCODE_MASK_OUTPAINT;
  e.outpaint_margin = 4;
  CHECK(varcode_edit(g, &e, NULL, NULL, NULL, &b) == VARCODE_OK);
  varcode_result_free(b);
  b = NULL;
  progress_log edit_stop = {0, 0, 0, -1, 1, 0, NULL};
  CHECK_FAILS(varcode_edit(g, &e, log_progress, &edit_stop, NULL, &b), VARCODE_ERROR_CANCELLED, "cancelled");
  /* bad edits */
  varcode_edit_request be = e;
  be.outpaint_margin = 0;
  CHECK_FAILS(varcode_edit(g, &be, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "margin");
  be.outpaint_margin = 16;
  CHECK_FAILS(varcode_edit(g, &be, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "margin");
  be = e;
  be.mask_kind = VARCODE_MASK_BOX;
  be.box[0] = 20, be.box[1] = 0, be.box[2] = 40, be.box[3] = 10;
  CHECK_FAILS(varcode_edit(g, &be, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "rectangle");
  be.box[0] = 5, be.box[2] = 5;
  CHECK_FAILS(varcode_edit(g, &be, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "rectangle");
  be = e;
  be.mask_kind = (varcode_mask_kind)9;
  CHECK_FAILS(varcode_edit(g, &be, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "mask_kind");
  be.mask_kind = VARCODE_MASK_ARRAY;
  be.mask = NULL;
  CHECK_FAILS(varcode_edit(g, &be, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "mask");
  float zeros[32 * 32];
  memset(zeros, 0, sizeof(zeros));
  be.mask = zeros;
  be.mask_height = 32;
  be.mask_width = 32;
  CHECK_FAILS(varcode_edit(g, &be, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "regenerates nothing");
  be.mask = mask;
  be.mask_height = 16; /* 32 x 16: neither the picture's size nor square */
  CHECK_FAILS(varcode_edit(g, &be, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "cannot be mapped");
  float twos[32 * 32];
  for (int i = 0; i < 32 * 32; ++i) twos[i] = 2.0f;
  be.mask = twos;
  be.mask_height = 32;
  CHECK_FAILS(varcode_edit(g, &be, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "[0, 1]");
  be = e;
  be.class_label = 10;
  CHECK_FAILS(varcode_edit(g, &be, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "class 10");
  be = e;
  be.height = 0;
  CHECK_FAILS(varcode_edit(g, &be, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "picture");
  be = e;
  be.rgb8 = NULL;
  CHECK_FAILS(varcode_edit(g, &be, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "NULL");
  be = e;
  be.sampling = &t;
  t = s;
  t.cfg = 1.0;
  t.top_p = -1;
  CHECK_FAILS(varcode_edit(g, &be, NULL, NULL, NULL, &b), VARCODE_ERROR_INVALID_ARGUMENT, "top-p");
  CHECK(b == NULL);

  varcode_result_free(a);
}

static char g_fixtures[1024];

static const char* fixture_path(const char* name) {
  static char buf[16][1100];
  static int next = 0;
  char* p = buf[next++ % 16];
  snprintf(p, sizeof(buf[0]), "%s/tiny/%s", g_fixtures, name);
  return p;
}

static void* read_npy(const char* path, size_t elem_size, size_t* count);

/* The VQ-VAE on the fixture's 256 px one (VqvaeModel knows the official schedules, 680 and 2240
 * tokens): decoding the reference's tokens gives its reconstruction. */
static void check_vqvae(void) {
  varcode_vqvae* vae = (varcode_vqvae*)&vae;
  varcode_result* b = NULL;
  CHECK_FAILS(varcode_vqvae_open(NULL, &vae), VARCODE_ERROR_INVALID_ARGUMENT, "no path");
  CHECK(vae == NULL);
  CHECK_FAILS(varcode_vqvae_open(fixture_path("vae.pth"), NULL), VARCODE_ERROR_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(varcode_vqvae_open(fixture_path("missing.pth"), &vae), VARCODE_ERROR_FILE, "missing.pth");
  CHECK_FAILS(varcode_vqvae_open(fixture_path("refiner.pth"), &vae), VARCODE_ERROR_FILE, "refiner.pth");
  CHECK(vae == NULL);
  CHECK(varcode_vqvae_vocab(NULL) == 0);
  CHECK(strcmp(varcode_vqvae_last_error(NULL), "no VQ-VAE") == 0);
  varcode_vqvae_free(NULL);
  CHECK(varcode_vqvae_open(fixture_path("vae.pth"), &vae) == VARCODE_OK);
  if (!vae) return;
  CHECK(varcode_vqvae_vocab(vae) == 4096);
  size_t n_tokens = 0, n_pixels = 0;
  int64_t* tokens = (int64_t*)read_npy(fixture_path("vae_encode_tokens.npy"), sizeof(int64_t), &n_tokens);
  float* recon = (float*)read_npy(fixture_path("vae_encode_recon.npy"), sizeof(float), &n_pixels);
  CHECK(tokens && recon && n_tokens == 680 && n_pixels == 3 * 256 * 256);
  if (tokens && recon && n_tokens == 680 && n_pixels == 3 * 256 * 256) {
    CHECK(varcode_vqvae_decode(vae, tokens, 1, 680, &b) == VARCODE_OK);
    if (b) {
      CHECK(b->num_images == 1 && b->height == 256 && b->width == 256 && b->num_tokens == 680);
      double max_err = 0;
      for (size_t i = 0; i < n_pixels; ++i) max_err = fmax(max_err, fabs((double)b->pixels[i] - recon[i]));
      printf("VQ-VAE decode through the C API: max error %.3g against the reference (tolerance 1e-3)\n", max_err);
      CHECK(max_err <= 1e-3);
      varcode_result* e = NULL;
      CHECK(varcode_vqvae_encode(vae, b->rgb8, 256, 256, 0, &e) == VARCODE_OK);
      CHECK(e && e->num_images == 1 && e->num_tokens == 680 && e->height == 256);
      varcode_result_free(e);
      e = NULL;
      CHECK(varcode_vqvae_encode(vae, b->rgb8, 256, 256, 256, &e) == VARCODE_OK);
      varcode_result_free(e);
      e = NULL;
      CHECK_FAILS(varcode_vqvae_encode(vae, b->rgb8, 256, 256, -1, &e), VARCODE_ERROR_INVALID_ARGUMENT, "size");
      CHECK_FAILS(varcode_vqvae_encode(vae, b->rgb8, 256, 256, 100, &e), VARCODE_ERROR_INVALID_ARGUMENT, "100");
      CHECK_FAILS(varcode_vqvae_encode(vae, NULL, 256, 256, 0, &e), VARCODE_ERROR_INVALID_ARGUMENT, "NULL");
      CHECK_FAILS(varcode_vqvae_encode(NULL, b->rgb8, 256, 256, 0, &e), VARCODE_ERROR_INVALID_ARGUMENT, "vae is NULL");
      CHECK(e == NULL);
      varcode_result_free(b);
      b = NULL;
    }
    CHECK_FAILS(varcode_vqvae_decode(vae, tokens, 1, 131, &b), VARCODE_ERROR_INVALID_ARGUMENT, "131");
    tokens[50] = 4096;
    CHECK_FAILS(varcode_vqvae_decode(vae, tokens, 1, 680, &b), VARCODE_ERROR_INVALID_ARGUMENT, "4096");
    CHECK_FAILS(varcode_vqvae_decode(vae, NULL, 1, 680, &b), VARCODE_ERROR_INVALID_ARGUMENT, "tokens");
    CHECK(strstr(varcode_vqvae_last_error(vae), "tokens") != NULL);
    CHECK_FAILS(varcode_vqvae_decode(NULL, tokens, 1, 680, &b), VARCODE_ERROR_INVALID_ARGUMENT, "vae is NULL");
    CHECK(b == NULL);
  }
  free(tokens);
  free(recon);
  varcode_vqvae_free(vae);
}

static void check_inspect(void) {
  char* json = NULL;
  CHECK(varcode_inspect(model_path("fashion_drafter.pth"), &json) == VARCODE_OK);
  CHECK(json && strstr(json, "\"kind\":\"var\"") && strstr(json, "\"num_classes\":10"));
  varcode_string_free(json);
  json = NULL;
  CHECK(varcode_inspect(model_path("fashion_vae.pth"), &json) == VARCODE_OK);
  CHECK(json && strstr(json, "\"kind\":\"vqvae\""));
  varcode_string_free(json);
  varcode_string_free(NULL);
  json = (char*)&json;
  CHECK_FAILS(varcode_inspect(model_path("missing.pth"), &json), VARCODE_ERROR_FILE, "missing.pth");
  CHECK(json == NULL);
  CHECK_FAILS(varcode_inspect(model_path("classes.txt"), &json), VARCODE_ERROR_FILE, "classes.txt");
  CHECK_FAILS(varcode_inspect(NULL, &json), VARCODE_ERROR_INVALID_ARGUMENT, "NULL");
  CHECK_FAILS(varcode_inspect(model_path("fashion_vae.pth"), NULL), VARCODE_ERROR_INVALID_ARGUMENT, "NULL");
}

static void run_contract(void) {
  const char* env = getenv("VARCODE_TEST_MODELS");
  snprintf(g_models, sizeof(g_models), "%s", env && *env ? env : VARCODE_MODELS_DIR);
  check_version_and_status();
  check_open_errors();
  check_inspect();
  const char* fx = getenv("VARCODE_FIXTURES");
  snprintf(g_fixtures, sizeof(g_fixtures), "%s", fx && *fx ? fx : VARCODE_FIXTURES);
  check_vqvae();
  varcode_generator* g = NULL;
  CHECK(varcode_generator_open_builtin(NULL, VARCODE_DTYPE_F32, &g) == VARCODE_OK); /* beside the executable */
  varcode_generator_free(g);
  g = NULL;
  CHECK(varcode_generator_open_builtin(g_models, VARCODE_DTYPE_F32, &g) == VARCODE_OK);
  if (!g) {
    fprintf(stderr, "cannot open the built-in models in %s: %s\n", g_models, varcode_last_error());
    ++g_failures;
    return;
  }
  check_classes_and_info(g);
  check_generate(g);
  varcode_generator_free(g);
}

/* ---- golden: the reference's tokens on ../shared/fixtures/tiny ---- */

/* An .npy file's data (little-endian '<i8' or '<f4', C order), `count` elements, or NULL. */
static void* read_npy(const char* path, size_t elem_size, size_t* count) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  unsigned char head[10];
  void* data = NULL;
  if (fread(head, 1, 10, f) == 10 && memcmp(head, "\x93NUMPY", 6) == 0 && head[6] == 1) {
    const long header_len = head[8] | (head[9] << 8);
    fseek(f, 0, SEEK_END);
    const long size = ftell(f) - 10 - header_len;
    fseek(f, 10 + header_len, SEEK_SET);
    *count = (size_t)size / elem_size;
    data = malloc((size_t)size);
    if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
      free(data);
      data = NULL;
    }
  }
  fclose(f);
  return data;
}

static void run_golden(void) {
  const char* env = getenv("VARCODE_FIXTURES");
  char dir[1024], vae[1100], drafter[1100], refiner[1100], path[1100];
  snprintf(dir, sizeof(dir), "%s/tiny", env && *env ? env : VARCODE_FIXTURES);
  snprintf(vae, sizeof(vae), "%s/vae.pth", dir);
  snprintf(drafter, sizeof(drafter), "%s/drafter.pth", dir);
  snprintf(refiner, sizeof(refiner), "%s/refiner.pth", dir);
  const varcode_model_files files = {vae, NULL, drafter, refiner, 4};
  varcode_generator* g = NULL;
  if (varcode_generator_open(&files, VARCODE_DTYPE_F32, &g) != VARCODE_OK) {
    fprintf(stderr, "cannot open the fixtures in %s: %s\n", dir, varcode_last_error());
    ++g_failures;
    return;
  }
  /* case code_n4: classes 207, 980, cfg 1.5, greedy */
  const int classes[2] = {207, 980};
  varcode_sampling s;
  varcode_sampling_defaults(g, &s);
  s.cfg = 1.5;
  s.top_k = 1;
  s.top_p = 0;
  varcode_generate_request req;
  memset(&req, 0, sizeof(req));
  req.classes = classes;
  req.num_images = 2;
  req.sampling = &s;
  varcode_result* r = NULL;
  CHECK(varcode_generate(g, &req, NULL, NULL, NULL, &r) == VARCODE_OK);
  size_t n_tokens = 0, n_pixels = 0;
  snprintf(path, sizeof(path), "%s/code_n4_tokens.npy", dir);
  int64_t* want_tokens = (int64_t*)read_npy(path, sizeof(int64_t), &n_tokens);
  snprintf(path, sizeof(path), "%s/code_n4_image.npy", dir);
  float* want_image = (float*)read_npy(path, sizeof(float), &n_pixels);
  CHECK(want_tokens && want_image);
  if (r && want_tokens && want_image) {
    CHECK(n_tokens == (size_t)(r->num_images * r->num_tokens));
    CHECK(n_pixels == (size_t)(r->num_images * 3 * r->height * r->width));
    if (n_tokens == (size_t)(r->num_images * r->num_tokens))
      CHECK(memcmp(r->tokens, want_tokens, n_tokens * sizeof(int64_t)) == 0);
    double max_err = 0;
    for (size_t i = 0; i < n_pixels && n_pixels == (size_t)(r->num_images * 3 * r->height * r->width); ++i)
      max_err = fmax(max_err, fabs((double)r->pixels[i] - want_image[i]));
    printf("code_n4 through the C API: tokens %s, image max error %.3g (tolerance 1e-3)\n",
           n_tokens && memcmp(r->tokens, want_tokens, n_tokens * sizeof(int64_t)) == 0 ? "identical" : "DIFFER",
           max_err);
    CHECK(max_err <= 1e-3);
  }
  free(want_tokens);
  free(want_image);
  varcode_result_free(r);
  varcode_generator_free(g);
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "contract";
  if (strcmp(mode, "contract") == 0) {
    run_contract();
  } else if (strcmp(mode, "golden") == 0) {
    run_golden();
  } else {
    fprintf(stderr, "usage: %s contract|golden\n", argv[0]);
    return 2;
  }
  if (g_failures)
    fprintf(stderr, "%d check(s) failed\n", g_failures);
  else
    printf("all checks passed (%s)\n", mode);
  return g_failures ? 1 : 0;
}
