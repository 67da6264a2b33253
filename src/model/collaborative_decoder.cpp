#include "model/collaborative_decoder.hpp"

#include <algorithm>
#include <chrono>

namespace varcode::model {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

constexpr int64_t kF32 = sizeof(float);

// Every image's sampling settings, on the host, as the backend reads them.
Tensor image_draws(const GenerationInput& in, int num_scales) {
  const int64_t B = static_cast<int64_t>(in.labels.size());
  if (num_scales > backend::ImageDraw::kMaxScales)
    throw Error("a schedule of " + std::to_string(num_scales) + " scales is more than the " +
                std::to_string(backend::ImageDraw::kMaxScales) + " the sampler takes");
  if (in.image_index.size() != in.labels.size()) throw Error("internal: one image index per label expected");
  if (!in.seeds.empty() && static_cast<int64_t>(in.seeds.size()) != B)
    throw Error("internal: one seed per image expected");
  if (!in.image_sampling.empty() && static_cast<int64_t>(in.image_sampling.size()) != B)
    throw Error("internal: one sampling setting per image expected");
  static_assert(sizeof(backend::ImageDraw) % sizeof(float) == 0);
  constexpr int64_t kWords = sizeof(backend::ImageDraw) / sizeof(float);
  Tensor host = Tensor::empty(DType::f32, {B, kWords});  // [B] ImageDraw records
  auto* draws = static_cast<backend::ImageDraw*>(host.raw());
  for (int64_t b = 0; b < B; ++b) {
    const SamplingSettings& s = in.image_sampling.empty() ? in.sampling : in.image_sampling[static_cast<size_t>(b)];
    if (static_cast<int>(s.temperature.size()) != num_scales)
      throw Error("internal: one temperature per scale expected");
    backend::ImageDraw d;
    d.seed = in.seeds.empty() ? in.seed : in.seeds[static_cast<size_t>(b)];
    d.image_index = in.image_index[static_cast<size_t>(b)];
    d.top_k = s.top_k;
    d.top_p = s.top_p;
    d.cfg = s.cfg;
    for (int si = 0; si < num_scales; ++si) d.temperature[si] = s.temperature[static_cast<size_t>(si)];
    d.smooth = s.smooth ? 1 : 0;
    draws[b] = d;
  }
  return host;
}

}  // namespace

CollaborativeDecoder::CollaborativeDecoder(const VarTransformer& drafter, const VarTransformer* refiner,
                                           int draft_steps, const Quantizer& quantizer)
    : drafter_(drafter), refiner_(refiner), draft_steps_(draft_steps), quantizer_(quantizer) {
  const VarConfig& d = drafter.config();
  if (!refiner_) {
    draft_steps_ = d.num_scales();
  } else {
    const VarConfig& r = refiner->config();
    if (draft_steps < 1 || draft_steps > d.num_scales() - 1)
      throw Error("--draft-steps " + std::to_string(draft_steps) + " is outside [1, " +
                  std::to_string(d.num_scales() - 1) + "]");
    if (d.patch_nums != r.patch_nums || d.vocab != r.vocab || d.cvae != r.cvae)
      throw Error("drafter " + drafter.path() + " and refiner " + refiner->path() +
                  " do not share vocabulary, latent size and scale schedule");
    if (d.num_classes != r.num_classes)
      throw Error("drafter " + drafter.path() + " has " + std::to_string(d.num_classes) + " classes, refiner " +
                  refiner->path() + " has " + std::to_string(r.num_classes));
  }
  if (&drafter.backend() != &quantizer.backend() || (refiner_ && &refiner_->backend() != &drafter.backend()))
    throw Error("internal: the models of one pipeline must live on one backend");
  if (quantizer.embedding().dim(0) != d.vocab || quantizer.embedding().dim(1) != d.cvae)
    throw Error("the VQ-VAE's codebook " + shape_str(quantizer.embedding().shape()) + " does not match the model " +
                drafter.path() + " (vocabulary " + std::to_string(d.vocab) + ", latent " + std::to_string(d.cvae) +
                ")");
}

GenerationOutput CollaborativeDecoder::run(const GenerationInput& in, const ScaleCallback& on_scale,
                                           const std::atomic<bool>* cancel) const {
  const backend::Backend& be = drafter_.backend();
  const VarConfig& cfg = drafter_.config();
  const std::vector<int>& pns = cfg.patch_nums;
  const int SN = cfg.num_scales(), N = draft_steps_;
  const int64_t B = static_cast<int64_t>(in.labels.size()), R = 2 * B, L = cfg.total_tokens();
  const int64_t V = cfg.vocab, Cvae = cfg.cvae, P = pns.back();
  if (B == 0) throw Error("nothing to generate: no classes given");
  const Tensor draws_dev = be.to_device(image_draws(in, SN));  // [B] ImageDraw
  const auto* draws = static_cast<const backend::ImageDraw*>(draws_dev.raw());
  GenerationOutput out;
  Tensor tokens = be.zeros(DType::i64, {B, L});       // [B, L]
  out.f_hat = be.zeros(DType::f32, {B, Cvae, P, P});  // [B, Cvae, P, P]
  // The continuous inputs of scales 1..N built from the drafter's latent, for the refiner's prefill.
  const int64_t handover_len = refiner_ ? cfg.scale_end(N - 1) : 0;  // = begin_N
  const int64_t hist = std::max<int64_t>(handover_len - 1, 1);
  Tensor history = be.alloc(DType::f32, {B, hist, Cvae});  // [B, begin_N - 1, Cvae]

  const int64_t max_l = static_cast<int64_t>(pns.back()) * pns.back();
  Tensor logits, logits_cfg, h, next_in;
  const VarTransformer* model = &drafter_;
  VarState st = drafter_.start(in.labels, refiner_ ? handover_len : L);
  Tensor x = be.alloc(DType::f32, {R, 1, drafter_.config().width});  // [R, l, C]
  drafter_.first_input(st, x.data<float>());
  double t_stage = now_seconds();

  out.scale_seconds.assign(static_cast<size_t>(SN), 0.0);
  for (int si = 0; si < SN; ++si) {
    if (cancel && cancel->load()) throw Error("generation cancelled");
    const double t_scale = now_seconds();
    const int64_t pn = pns[static_cast<size_t>(si)], l = pn * pn, begin = cfg.scale_begin(si);
    int64_t x_len = l, head_from = 0, p0 = begin;
    if (refiner_ && si == N) {
      // Hand-over: the drafter's cache goes; the refiner reads every drafted scale in one pass.
      be.synchronize();
      out.drafter_seconds = now_seconds() - t_stage;
      t_stage = now_seconds();
      st = VarState();
      model = refiner_;
      st = refiner_->start(in.labels, L);
      const int64_t C = refiner_->config().width;
      x_len = begin + l;  // positions [0, end_N)
      head_from = begin;
      p0 = 0;
      Tensor first = be.alloc(DType::f32, {R, 1, C});         // [R, 1, C]
      Tensor rest = be.alloc(DType::f32, {R, x_len - 1, C});  // [R, end_N - 1, C]
      refiner_->first_input(st, first.data<float>());
      // inputs of scales 1..N: history holds 1..N-1, next_in holds scale N
      const int64_t tl = x_len - 1;
      Tensor tok = be.alloc(DType::f32, {B, tl, Cvae});  // [B, end_N - 1, Cvae]
      be.copy_2d(history.data<float>(), hist * Cvae * kF32, tok.data<float>(), tl * Cvae * kF32,
                 (handover_len - 1) * Cvae * kF32, B);
      be.copy_2d(next_in.data<float>(), l * Cvae * kF32, tok.data<float>() + (handover_len - 1) * Cvae,
                 tl * Cvae * kF32, l * Cvae * kF32, B);
      refiner_->embed(st, tok.data<float>(), tl, 1, rest.data<float>());
      x = be.alloc(DType::f32, {R, x_len, C});  // [R, end_N, C]
      be.copy_2d(first.data<float>(), C * kF32, x.data<float>(), x_len * C * kF32, C * kF32, R);
      be.copy_2d(rest.data<float>(), tl * C * kF32, x.data<float>() + C, x_len * C * kF32, tl * C * kF32, R);
    } else if (si > 0) {
      x = be.alloc(DType::f32, {R, l, model->config().width});  // [R, l, C]
      model->embed(st, next_in.data<float>(), l, begin, x.data<float>());
    }
    if (on_scale) on_scale(!refiner_ ? "var" : (si < N ? "drafter" : "refiner"), si, SN);

    model->blocks(st, x.data<float>(), x_len, p0);
    if (!logits.defined()) {
      logits = be.alloc(DType::f32, {R, max_l, V});      // [R, l, V]
      logits_cfg = be.alloc(DType::f32, {B, max_l, V});  // [B, l, V]
      h = be.alloc(DType::f32, {B, max_l, Cvae});        // [B, l, Cvae]
    }
    model->head(st, x.data<float>(), x_len, head_from, l, logits.data<float>());
    const double ratio = SN > 1 ? static_cast<double>(si) / (SN - 1) : 0.0;
    be.cfg(logits.data<float>(), B, l, V, draws, ratio, logits_cfg.data<float>());
    backend::SampleArgs draw;
    draw.logits = logits_cfg.data<float>();
    draw.batch = B;
    draw.l = l;
    draw.vocab = V;
    draw.draws = draws;
    draw.scale = si;
    draw.smooth_ratio = ratio;
    draw.codebook = &quantizer_.codebook();
    draw.tokens = tokens.data<int64_t>();
    draw.token_stride = L;
    draw.token_begin = begin;
    draw.h = h.data<float>();
    be.sample(draw);

    const Tensor h_scale = h.view(DType::f32, {B, l, Cvae});  // [B, l, Cvae]
    quantizer_.add_scale(si, pns, h_scale, out.f_hat);
    if (in.edit) {
      const Tensor& gt = in.edit->f_hat_gt[static_cast<size_t>(si)];  // [1, Cvae, P, P]
      be.blend(out.f_hat.data<float>(), gt.data<float>(), in.edit->keep.data<float>(), B, Cvae, P * P);
    }
    if (si + 1 < SN) {
      next_in = quantizer_.next_input(si, pns, out.f_hat);  // [B, pn_{si+1}^2, Cvae]
      if (refiner_ && si + 1 < N) {
        const int64_t nl = next_in.dim(1), off = cfg.scale_begin(si + 1) - 1;
        be.copy_2d(next_in.data<float>(), nl * Cvae * kF32, history.data<float>() + off * Cvae, hist * Cvae * kF32,
                   nl * Cvae * kF32, B);
      }
    }
    be.synchronize();
    out.scale_seconds[static_cast<size_t>(si)] = now_seconds() - t_scale;
  }
  (refiner_ ? out.refiner_seconds : out.drafter_seconds) = now_seconds() - t_stage;
  out.tokens = be.to_host(tokens);  // [B, L]: the one copy back of the whole generation but the images
  return out;
}

Tensor teacher_forced_logits(const VarTransformer& model, const Quantizer& quantizer, const Tensor& tokens, int label) {
  const backend::Backend& be = model.backend();
  const VarConfig& cfg = model.config();
  const int64_t L = cfg.total_tokens(), C = cfg.width, V = cfg.vocab, Cvae = cfg.cvae;
  const std::vector<int>& pns = cfg.patch_nums;
  if (tokens.dtype() != DType::i64 || tokens.shape() != Shape{1, L})
    throw Error("teacher forcing expects int64 tokens [1, " + std::to_string(L) + "], got " +
                shape_str(tokens.shape()));
  const int64_t P = pns.back();
  Tensor h_all = quantizer.embed(tokens);                  // [1, L, Cvae], checks every token
  Tensor f_hat = be.zeros(DType::f32, {1, Cvae, P, P});    // [1, Cvae, P, P]
  Tensor inputs = be.alloc(DType::f32, {1, L - 1, Cvae});  // [1, L - 1, Cvae] inputs of scales 1..SN-1
  for (int si = 0; si + 1 < cfg.num_scales(); ++si) {
    const int64_t l = static_cast<int64_t>(pns[static_cast<size_t>(si)]) * pns[static_cast<size_t>(si)];
    Tensor h = be.alloc(DType::f32, {1, l, Cvae});  // [1, l, Cvae]
    be.copy_2d(h_all.data<float>() + cfg.scale_begin(si) * Cvae, 0, h.data<float>(), 0, l * Cvae * kF32, 1);
    quantizer.add_scale(si, pns, h, f_hat);
    Tensor nxt = quantizer.next_input(si, pns, f_hat);  // [1, pn_{si+1}^2, Cvae]
    be.copy_2d(nxt.raw(), 0, inputs.data<float>() + (cfg.scale_begin(si + 1) - 1) * Cvae, 0,
               static_cast<int64_t>(nxt.nbytes()), 1);
  }
  VarState st = model.start({label}, L);
  const int64_t R = 2;
  Tensor first = be.alloc(DType::f32, {R, 1, C});     // [R, 1, C]
  Tensor rest = be.alloc(DType::f32, {R, L - 1, C});  // [R, L - 1, C]
  model.first_input(st, first.data<float>());
  model.embed(st, inputs.data<float>(), L - 1, 1, rest.data<float>());
  Tensor x = be.alloc(DType::f32, {R, L, C});  // [R, L, C]
  be.copy_2d(first.data<float>(), C * kF32, x.data<float>(), L * C * kF32, C * kF32, R);
  be.copy_2d(rest.data<float>(), (L - 1) * C * kF32, x.data<float>() + C, L * C * kF32, (L - 1) * C * kF32, R);
  model.blocks(st, x.data<float>(), L, 0);
  Tensor logits = be.alloc(DType::f32, {R, L, V});  // [R, L, V]
  model.head(st, x.data<float>(), L, 0, L, logits.data<float>());
  return be.to_host(logits.view(DType::f32, {1, L, V}));  // [1, L, V] the conditional row only
}

}  // namespace varcode::model
