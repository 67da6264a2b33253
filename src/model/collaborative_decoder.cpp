#include "model/collaborative_decoder.hpp"

#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

namespace varcode::model {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Samples scale `si` from CFG-combined logits and returns the latent tokens' embeddings.
// logits_cfg: [B, l, V] (modified); idx_out: B rows of `tokens` at column `begin`; h: [B, l, Cvae].
void sample_scale(const GenerationInput& in, int si, int num_scales, int64_t l, int64_t vocab, float* logits_cfg,
                  const Quantizer& quantizer, int64_t* tokens, int64_t token_stride, int64_t begin, float* h) {
  const int64_t B = static_cast<int64_t>(in.labels.size());
  const Tensor& codebook = quantizer.embedding();  // [V, Cvae]
  const int64_t cvae = codebook.dim(1);
  const double ratio = num_scales > 1 ? static_cast<double>(si) / (num_scales - 1) : 0.0;
#pragma omp parallel for schedule(dynamic, 1) if (B * l > 1)
  for (int64_t i = 0; i < B * l; ++i) {
    const int64_t b = i / l, t = i % l;
    const SamplingSettings& s = in.image_sampling.empty() ? in.sampling : in.image_sampling[static_cast<size_t>(b)];
    const FilterParams fp{s.top_k, s.top_p, s.temperature[static_cast<size_t>(si)]};
    const CounterRng rng{in.seeds.empty() ? in.seed : in.seeds[static_cast<size_t>(b)]};
    float* lg = logits_cfg + i * vocab;
    const uint32_t img = in.image_index[static_cast<size_t>(b)];
    const double u = rng.uniform(img, static_cast<uint32_t>(si), static_cast<uint32_t>(t), 0);
    const int idx = sample_token(lg, static_cast<int>(vocab), fp, u);  // lg is now filtered
    tokens[b * token_stride + begin + t] = idx;
    float* hi = h + i * cvae;
    if (!s.smooth) {
      std::memcpy(hi, codebook.data<float>() + idx * cvae, sizeof(float) * static_cast<size_t>(cvae));
      continue;
    }
    // more_smooth: softmax((filtered * (1 + ratio) + gumbel) / tau) @ codebook.
    const double tau = std::max(0.27 * (1 - 0.95 * ratio), 0.005);
    std::vector<double> w(static_cast<size_t>(vocab));
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t v = 0; v < vocab; ++v) {
      if (std::isinf(lg[v])) {
        w[static_cast<size_t>(v)] = -std::numeric_limits<double>::infinity();
        continue;
      }
      const double g = -std::log(-std::log(
          std::max(rng.uniform(img, static_cast<uint32_t>(si), static_cast<uint32_t>(t), static_cast<uint32_t>(1 + v)),
                   1e-300)));
      w[static_cast<size_t>(v)] = (lg[v] * (1 + ratio) + g) / tau;
      mx = std::max(mx, w[static_cast<size_t>(v)]);
    }
    double z = 0;
    for (double& x : w) z += (x = std::isinf(x) ? 0.0 : std::exp(x - mx));
    for (int64_t c = 0; c < cvae; ++c) hi[c] = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      const double p = w[static_cast<size_t>(v)] / z;
      if (p == 0) continue;
      for (int64_t c = 0; c < cvae; ++c) hi[c] += static_cast<float>(p * codebook.data<float>()[v * cvae + c]);
    }
  }
}

void blend(const EditGuide& edit, int si, Tensor& f_hat) {
  const int64_t B = f_hat.dim(0), C = f_hat.dim(1), PP = f_hat.dim(2) * f_hat.dim(3);
  const float* gt = edit.f_hat_gt[static_cast<size_t>(si)].data<float>();  // [1, C, P, P]
  const float* keep = edit.keep.data<float>();                             // [P, P]
  float* f = f_hat.data<float>();                                          // [B, C, P, P]
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t p = 0; p < PP; ++p) {
        float& x = f[(b * C + c) * PP + p];
        x = x * (1 - keep[p]) + gt[c * PP + p] * keep[p];
      }
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
  if (quantizer.embedding().dim(0) != d.vocab || quantizer.embedding().dim(1) != d.cvae)
    throw Error("the VQ-VAE's codebook " + shape_str(quantizer.embedding().shape()) + " does not match the model " +
                drafter.path() + " (vocabulary " + std::to_string(d.vocab) + ", latent " + std::to_string(d.cvae) +
                ")");
}

GenerationOutput CollaborativeDecoder::run(const GenerationInput& in, const ScaleCallback& on_scale,
                                           const std::atomic<bool>* cancel) const {
  const VarConfig& cfg = drafter_.config();
  const std::vector<int>& pns = cfg.patch_nums;
  const int SN = cfg.num_scales(), N = draft_steps_;
  const int64_t B = static_cast<int64_t>(in.labels.size()), R = 2 * B, L = cfg.total_tokens();
  const int64_t V = cfg.vocab, Cvae = cfg.cvae, P = pns.back();
  if (B == 0) throw Error("nothing to generate: no classes given");
  if (static_cast<int>(in.sampling.temperature.size()) != SN)
    throw Error("internal: one temperature per scale expected");
  if (!in.seeds.empty() && static_cast<int64_t>(in.seeds.size()) != B)
    throw Error("internal: one seed per image expected");
  if (!in.image_sampling.empty() && static_cast<int64_t>(in.image_sampling.size()) != B)
    throw Error("internal: one sampling setting per image expected");
  for (const SamplingSettings& s : in.image_sampling)
    if (static_cast<int>(s.temperature.size()) != SN) throw Error("internal: one temperature per scale expected");

  GenerationOutput out;
  out.tokens = Tensor::zeros(DType::i64, {B, L});          // [B, L]
  out.f_hat = Tensor::zeros(DType::f32, {B, Cvae, P, P});  // [B, Cvae, P, P]
  // The continuous inputs of scales 1..N built from the drafter's latent, for the refiner's prefill.
  const int64_t handover_len = refiner_ ? cfg.scale_end(N - 1) : 0;  // = begin_N
  Tensor history =
      Tensor::empty(DType::f32, {B, std::max<int64_t>(handover_len - 1, 1), Cvae});  // [B, begin_N - 1, Cvae]

  const int64_t max_l = static_cast<int64_t>(pns.back()) * pns.back();
  Tensor logits, logits_cfg, h, next_in;
  const VarTransformer* model = &drafter_;
  VarState st = drafter_.start(in.labels, refiner_ ? handover_len : L);
  Tensor x = Tensor::empty(DType::f32, {R, 1, drafter_.config().width});  // [R, l, C]
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
      out.drafter_seconds = now_seconds() - t_stage;
      t_stage = now_seconds();
      st = VarState();
      model = refiner_;
      st = refiner_->start(in.labels, L);
      const int64_t C = refiner_->config().width;
      x_len = begin + l;  // positions [0, end_N)
      head_from = begin;
      p0 = 0;
      Tensor first = Tensor::empty(DType::f32, {R, 1, C});         // [R, 1, C]
      Tensor rest = Tensor::empty(DType::f32, {R, x_len - 1, C});  // [R, end_N - 1, C]
      refiner_->first_input(st, first.data<float>());
      // inputs of scales 1..N: history holds 1..N-1, next_in holds scale N
      Tensor tok = Tensor::empty(DType::f32, {B, x_len - 1, Cvae});  // [B, end_N - 1, Cvae]
      for (int64_t b = 0; b < B; ++b) {
        std::memcpy(tok.data<float>() + b * (x_len - 1) * Cvae, history.data<float>() + b * (handover_len - 1) * Cvae,
                    sizeof(float) * static_cast<size_t>((handover_len - 1) * Cvae));
        std::memcpy(tok.data<float>() + (b * (x_len - 1) + handover_len - 1) * Cvae,
                    next_in.data<float>() + b * l * Cvae, sizeof(float) * static_cast<size_t>(l * Cvae));
      }
      refiner_->embed(st, tok.data<float>(), x_len - 1, 1, rest.data<float>());
      x = Tensor::empty(DType::f32, {R, x_len, C});  // [R, end_N, C]
      for (int64_t r = 0; r < R; ++r) {
        std::memcpy(x.data<float>() + r * x_len * C, first.data<float>() + r * C,
                    sizeof(float) * static_cast<size_t>(C));
        std::memcpy(x.data<float>() + (r * x_len + 1) * C, rest.data<float>() + r * (x_len - 1) * C,
                    sizeof(float) * static_cast<size_t>((x_len - 1) * C));
      }
    } else if (si > 0) {
      x = Tensor::empty(DType::f32, {R, l, model->config().width});  // [R, l, C]
      model->embed(st, next_in.data<float>(), l, begin, x.data<float>());
    }
    if (on_scale) on_scale(!refiner_ ? "var" : (si < N ? "drafter" : "refiner"), si, SN);

    model->blocks(st, x.data<float>(), x_len, p0);
    if (!logits.defined()) {
      logits = Tensor::empty(DType::f32, {R, max_l, V});      // [R, l, V]
      logits_cfg = Tensor::empty(DType::f32, {B, max_l, V});  // [B, l, V]
      h = Tensor::empty(DType::f32, {B, max_l, Cvae});        // [B, l, Cvae]
    }
    model->head(st, x.data<float>(), x_len, head_from, l, logits.data<float>());
    const double ratio = SN > 1 ? static_cast<double>(si) / (SN - 1) : 0.0;
    if (in.image_sampling.empty()) {
      apply_cfg(logits.data<float>(), B, l, V, in.sampling.cfg * ratio, logits_cfg.data<float>());
    } else {
      std::vector<double> t(static_cast<size_t>(B));
      for (int64_t b = 0; b < B; ++b) t[static_cast<size_t>(b)] = in.image_sampling[static_cast<size_t>(b)].cfg * ratio;
      apply_cfg_per_image(logits.data<float>(), B, l, V, t.data(), logits_cfg.data<float>());
    }
    sample_scale(in, si, SN, l, V, logits_cfg.data<float>(), quantizer_, out.tokens.data<int64_t>(), L, begin,
                 h.data<float>());

    Tensor h_scale = Tensor::borrow(DType::f32, {B, l, Cvae}, h.data<float>(), nullptr);  // [B, l, Cvae]
    quantizer_.add_scale(si, pns, h_scale, out.f_hat);
    if (in.edit) blend(*in.edit, si, out.f_hat);
    if (si + 1 < SN) {
      next_in = quantizer_.next_input(si, pns, out.f_hat);  // [B, pn_{si+1}^2, Cvae]
      if (refiner_ && si + 1 < N) {
        const int64_t nl = next_in.dim(1), off = cfg.scale_begin(si + 1) - 1;
        for (int64_t b = 0; b < B; ++b)
          std::memcpy(history.data<float>() + (b * (handover_len - 1) + off) * Cvae,
                      next_in.data<float>() + b * nl * Cvae, sizeof(float) * static_cast<size_t>(nl * Cvae));
      }
    }
    out.scale_seconds[static_cast<size_t>(si)] = now_seconds() - t_scale;
  }
  (refiner_ ? out.refiner_seconds : out.drafter_seconds) = now_seconds() - t_stage;
  return out;
}

Tensor teacher_forced_logits(const VarTransformer& model, const Quantizer& quantizer, const Tensor& tokens, int label) {
  const VarConfig& cfg = model.config();
  const int64_t L = cfg.total_tokens(), C = cfg.width, V = cfg.vocab, Cvae = cfg.cvae;
  const std::vector<int>& pns = cfg.patch_nums;
  if (tokens.dtype() != DType::i64 || tokens.shape() != Shape{1, L})
    throw Error("teacher forcing expects int64 tokens [1, " + std::to_string(L) + "], got " +
                shape_str(tokens.shape()));
  const Tensor& codebook = quantizer.embedding();  // [V, Cvae]
  const int64_t P = pns.back();
  Tensor f_hat = Tensor::zeros(DType::f32, {1, Cvae, P, P});    // [1, Cvae, P, P]
  Tensor inputs = Tensor::empty(DType::f32, {1, L - 1, Cvae});  // [1, L - 1, Cvae] inputs of scales 1..SN-1
  for (int si = 0; si + 1 < cfg.num_scales(); ++si) {
    const int64_t l = static_cast<int64_t>(pns[static_cast<size_t>(si)]) * pns[static_cast<size_t>(si)];
    Tensor h = Tensor::empty(DType::f32, {1, l, Cvae});  // [1, l, Cvae]
    for (int64_t t = 0; t < l; ++t) {
      const int64_t idx = tokens.data<int64_t>()[cfg.scale_begin(si) + t];
      if (idx < 0 || idx >= V)
        throw Error("token " + std::to_string(idx) + " is outside [0, " + std::to_string(V) + ")");
      std::memcpy(h.data<float>() + t * Cvae, codebook.data<float>() + idx * Cvae,
                  sizeof(float) * static_cast<size_t>(Cvae));
    }
    quantizer.add_scale(si, pns, h, f_hat);
    Tensor nxt = quantizer.next_input(si, pns, f_hat);  // [1, pn_{si+1}^2, Cvae]
    std::memcpy(inputs.data<float>() + (cfg.scale_begin(si + 1) - 1) * Cvae, nxt.data<float>(), nxt.nbytes());
  }
  VarState st = model.start({label}, L);
  const int64_t R = 2;
  Tensor first = Tensor::empty(DType::f32, {R, 1, C});     // [R, 1, C]
  Tensor rest = Tensor::empty(DType::f32, {R, L - 1, C});  // [R, L - 1, C]
  model.first_input(st, first.data<float>());
  model.embed(st, inputs.data<float>(), L - 1, 1, rest.data<float>());
  Tensor x = Tensor::empty(DType::f32, {R, L, C});  // [R, L, C]
  for (int64_t r = 0; r < R; ++r) {
    std::memcpy(x.data<float>() + r * L * C, first.data<float>() + r * C, sizeof(float) * static_cast<size_t>(C));
    std::memcpy(x.data<float>() + (r * L + 1) * C, rest.data<float>() + r * (L - 1) * C,
                sizeof(float) * static_cast<size_t>((L - 1) * C));
  }
  model.blocks(st, x.data<float>(), L, 0);
  Tensor logits = Tensor::empty(DType::f32, {R, L, V});  // [R, L, V]
  model.head(st, x.data<float>(), L, 0, L, logits.data<float>());
  Tensor out = Tensor::empty(DType::f32, {1, L, V});  // [1, L, V] the conditional row only
  std::memcpy(out.data<float>(), logits.data<float>(), out.nbytes());
  return out;
}

}  // namespace varcode::model
