/* varcode C API: class-conditional image generation with VAR and Collaborative Decoding (CoDe).
 *
 * Valid C11 (and C++). A thin layer over the C++ API (the include/varcode/ headers): no C++ exception
 * crosses it. Every call that can fail returns a varcode_status; the message of the failure is kept
 * in the handle it was made on (varcode_generator_last_error, varcode_vqvae_last_error) and, for
 * every call, in the calling thread (varcode_last_error), so a failed open, which has no handle,
 * still explains itself.
 *
 * Threads: a generator or VQ-VAE handle holds immutable weights; varcode_generate and varcode_edit
 * may run on one handle from several threads at once. The handle's last-error message is then the
 * message of whichever call failed last; varcode_last_error() is the calling thread's own.
 *
 * Memory: what a call returns (a varcode_result, varcode_tokens, varcode_images) belongs to the
 * library and is released by one call (varcode_result_free, ...). Strings returned as
 * `const char*` stay valid until the handle they came from is freed (error messages: until the
 * next failing call on that handle or thread). Arrays are C order, row-major.
 */
#ifndef VARCODE_H
#define VARCODE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VARCODE_VERSION_MAJOR 0
#define VARCODE_VERSION_MINOR 1
#define VARCODE_VERSION_PATCH 0

/* The library's version, "MAJOR.MINOR.PATCH" (may differ from the header's VARCODE_VERSION_* when
 * an application runs against another build). */
const char* varcode_version(void);
/* MAJOR * 10000 + MINOR * 100 + PATCH of the library. */
int varcode_version_number(void);

typedef enum varcode_status {
  VARCODE_OK = 0,
  VARCODE_ERROR_INVALID_ARGUMENT = 1, /* a NULL handle or pointer, a value out of range, a bad shape */
  VARCODE_ERROR_FILE = 2,             /* a file is missing, unreadable, or not what was expected */
  VARCODE_ERROR_CANCELLED = 3,        /* the cancellation flag was raised (or the callback asked) */
  VARCODE_ERROR_OUT_OF_MEMORY = 4,
  VARCODE_ERROR_RUNTIME = 5, /* anything else (an engine failure) */
  /* Not a status: gives the enum the range of int, so a value from another version is no
   * undefined behaviour in C++ (the convention of Vulkan's *_MAX_ENUM). The same below. */
  VARCODE_STATUS_MAX_ENUM_ = 0x7FFFFFFF
} varcode_status;

/* "ok", "invalid argument", "file", "cancelled", "out of memory", "runtime"; "unknown" otherwise. */
const char* varcode_status_name(varcode_status status);
/* The message of the last failed call made by this thread ("" when none failed). */
const char* varcode_last_error(void);

typedef enum varcode_dtype {
  VARCODE_DTYPE_AUTO = 0, /* bf16 where the CPU has AVX512-BF16 or AMX, else f32 */
  VARCODE_DTYPE_F32 = 1,
  VARCODE_DTYPE_BF16 = 2,
  VARCODE_DTYPE_MAX_ENUM_ = 0x7FFFFFFF
} varcode_dtype;

/* Worker threads for every kernel, for calls made from this thread (0 = all cores unless
 * OMP_NUM_THREADS is set). */
varcode_status varcode_set_num_threads(int threads);

/* ---- Cancellation flag ------------------------------------------------------------------------ */

/* A flag another thread (or a signal handler: varcode_cancel_raise is async-signal-safe) raises to
 * stop a running generation at the next scale. */
typedef struct varcode_cancel varcode_cancel;
varcode_cancel* varcode_cancel_new(void); /* NULL when out of memory */
void varcode_cancel_raise(varcode_cancel* flag);
void varcode_cancel_reset(varcode_cancel* flag);
int varcode_cancel_raised(const varcode_cancel* flag);
void varcode_cancel_free(varcode_cancel* flag);

/* ---- Progress --------------------------------------------------------------------------------- */

typedef struct varcode_progress_event {
  const char* stage; /* "var", "drafter", "refiner" or "vae" */
  int scale;         /* the scale about to run (0-based); 0 for "vae" */
  int num_scales;    /* 0 for "vae" */
  int64_t images_done, images_total;
} varcode_progress_event;
/* Called on the calling thread before every scale and before the VQ-VAE decodes a batch. Return 0
 * to go on, non-zero to cancel (the call then fails with VARCODE_ERROR_CANCELLED). */
typedef int (*varcode_progress_fn)(const varcode_progress_event* event, void* user_data);

/* ---- Generator -------------------------------------------------------------------------------- */

typedef struct varcode_generator varcode_generator;

/* Which files make the pipeline: `model` alone = original VAR; `drafter` + `refiner` +
 * `draft_steps` = collaborative decoding. Unused paths are NULL or "". */
typedef struct varcode_model_files {
  const char* vae;
  const char* model;
  const char* drafter;
  const char* refiner;
  int draft_steps;
} varcode_model_files;

/* Opens the files (every tensor validated). On failure *out is NULL and varcode_last_error() says
 * why: VARCODE_ERROR_FILE for a missing, unreadable or wrong file, VARCODE_ERROR_INVALID_ARGUMENT
 * for a bad combination (both `model` and a pair, no model, draft_steps outside 1..SN-1). */
varcode_status varcode_generator_open(const varcode_model_files* files, varcode_dtype dtype, varcode_generator** out);
/* The same on a device: "cpu", "cuda", "cuda:I" or "auto" (the first CUDA GPU that can run
 * varcode, else the CPU); NULL is "cpu". VARCODE_ERROR_INVALID_ARGUMENT naming the reason when the
 * device is not a device name or no GPU can run it (no CUDA build, no driver, no such GPU). */
varcode_status varcode_generator_open_on(const varcode_model_files* files, varcode_dtype dtype, const char* device,
                                         varcode_generator** out);
/* CUDA GPUs this process can use (0 without a CUDA build, driver or GPU). */
int varcode_cuda_device_count(void);
/* The shipped Fashion-MNIST pair (CoDe, 3 drafter scales), from $VARCODE_MODELS, `models_dir`
 * (may be NULL) or beside the executable. */
varcode_status varcode_generator_open_builtin(const char* models_dir, varcode_dtype dtype, varcode_generator** out);
void varcode_generator_free(varcode_generator* gen); /* NULL is fine */
/* The message of the last failed call on `gen` ("" when none; "no generator" for NULL). */
const char* varcode_generator_last_error(const varcode_generator* gen);

typedef struct varcode_generator_info {
  int collaborative; /* 1 for a drafter/refiner pair */
  int draft_steps;   /* drafter scales (= num_scales for VAR) */
  int num_classes;
  int num_scales;
  int image_size; /* pixels per side */
  int total_tokens;
  varcode_dtype compute_dtype; /* VARCODE_DTYPE_F32 or VARCODE_DTYPE_BF16, never AUTO */
} varcode_generator_info;
varcode_status varcode_generator_get_info(const varcode_generator* gen, varcode_generator_info* out);
/* The class name of `label` from the model's class-names file; NULL when it has none (or `label`
 * is out of range). */
const char* varcode_generator_class_name(const varcode_generator* gen, int label);
/* A class list as the command line takes it ("3,sneaker,0-2,all") -> labels. Writes at most
 * `capacity` labels to `labels` (may be NULL when capacity is 0) and the full count to *count;
 * VARCODE_ERROR_INVALID_ARGUMENT when the text is bad or the labels do not fit. */
varcode_status varcode_generator_parse_classes(varcode_generator* gen, const char* text, int* labels, size_t capacity,
                                               size_t* count);

/* Sampling settings; varcode_sampling_defaults fills the pipeline's defaults: the published FID settings,
 * or the fields the model's sampling.json gives over them (Generator::default_sampling). */
#define VARCODE_MAX_SCALES 32
typedef struct varcode_sampling {
  double cfg;
  int top_k;                              /* 0 disables, 1 is greedy */
  double top_p;                           /* 0 disables */
  int num_temperatures;                   /* 1 (every scale) or num_scales */
  double temperature[VARCODE_MAX_SCALES]; /* > 0 */
  int smooth;                             /* Gumbel-softmax latents (not for FID) */
} varcode_sampling;
varcode_status varcode_sampling_defaults(const varcode_generator* gen, varcode_sampling* out);

typedef struct varcode_generate_request {
  const int* classes; /* one image per entry, in order */
  size_t num_images;
  uint64_t seed;
  uint32_t first_index;             /* image i draws with index first_index + i ... */
  const uint32_t* image_indices;    /* ... unless this is non-NULL: num_images indices */
  const varcode_sampling* sampling; /* NULL: the pipeline's defaults */
  int batch;                        /* images per forward pass; 0 = all at once */
} varcode_generate_request;

/* What a generation made; owned by the library, released by varcode_result_free. */
typedef struct varcode_result {
  int64_t num_images;
  int height, width;
  int64_t num_tokens;    /* per image, scale after scale */
  const int64_t* tokens; /* [num_images, num_tokens] */
  const uint8_t* rgb8;   /* [num_images, height, width, 3]: the bytes a PNG of the image holds */
  const float* pixels;   /* [num_images, 3, height, width] in [0, 1] */
  double seconds_drafter, seconds_refiner, seconds_vae;
} varcode_result;

/* Generates; on success *out holds the result. `progress`, `user_data` and `cancel` may be NULL. */
varcode_status varcode_generate(varcode_generator* gen, const varcode_generate_request* request,
                                varcode_progress_fn progress, void* user_data, const varcode_cancel* cancel,
                                varcode_result** out);
void varcode_result_free(varcode_result* result); /* NULL is fine */

/* Zero-shot editing: inpainting, outpainting, class-conditional editing. */
typedef enum varcode_mask_kind {
  VARCODE_MASK_ARRAY = 0,    /* mask / mask_height / mask_width: f32 values in [0, 1] (1 = regenerate) */
  VARCODE_MASK_BOX = 1,      /* box: x0, y0, x1, y1 in the picture's pixels, regenerated */
  VARCODE_MASK_OUTPAINT = 2, /* outpaint_margin: a border of that many pixels regenerated */
  VARCODE_MASK_MAX_ENUM_ = 0x7FFFFFFF
} varcode_mask_kind;

typedef struct varcode_edit_request {
  /* The picture as 8-bit RGB [height, width, 3] of any size (centre-cropped to a square and resized
   * to the model's resolution, as `varcode edit --image x.png`). */
  const uint8_t* rgb8;
  int height, width;
  varcode_mask_kind mask_kind;
  const float* mask; /* [mask_height, mask_width]: the picture's size, or any square size */
  int mask_height, mask_width;
  int box[4];
  int outpaint_margin;
  int class_label;
  uint64_t seed;
  const varcode_sampling* sampling; /* NULL: defaults */
} varcode_edit_request;
varcode_status varcode_edit(varcode_generator* gen, const varcode_edit_request* request, varcode_progress_fn progress,
                            void* user_data, const varcode_cancel* cancel, varcode_result** out);

/* ---- VQ-VAE ----------------------------------------------------------------------------------- */

typedef struct varcode_vqvae varcode_vqvae;
varcode_status varcode_vqvae_open(const char* path, varcode_vqvae** out);
void varcode_vqvae_free(varcode_vqvae* vae);
const char* varcode_vqvae_last_error(const varcode_vqvae* vae);
int varcode_vqvae_vocab(const varcode_vqvae* vae); /* codebook size; 0 for NULL */

/* tokens [num_images, num_tokens] (scale after scale) -> pictures; *out as for varcode_generate
 * (tokens copied in). */
varcode_status varcode_vqvae_decode(varcode_vqvae* vae, const int64_t* tokens, int64_t num_images, int64_t num_tokens,
                                    varcode_result** out);
/* A picture rgb8 [height, width, 3] of any size, fitted to `size` pixels (0: its side when square,
 * else 256) -> its tokens and reconstruction, in *out (one image). */
varcode_status varcode_vqvae_encode(varcode_vqvae* vae, const uint8_t* rgb8, int height, int width, int size,
                                    varcode_result** out);

/* ---- Files ------------------------------------------------------------------------------------ */

/* Recognises and validates a model file; *json_out receives the `varcode inspect --json` object
 * (free it with varcode_string_free). */
varcode_status varcode_inspect(const char* path, char** json_out);
void varcode_string_free(char* s);

#ifdef __cplusplus
}
#endif

#endif /* VARCODE_H */
