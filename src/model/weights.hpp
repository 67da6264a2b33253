// The one checked accessor through which every model takes its tensors from a checkpoint.
#pragma once
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.hpp"
#include "io/checkpoint.hpp"
#include "varcode/tensor.hpp"

namespace varcode::model {

using LinearPtr = std::shared_ptr<const backend::LinearWeights>;  // null: absent, or check_only
using ConvPtr = std::shared_ptr<const backend::ConvWeights>;
// An int8 weight `<name>` (i8 [out, in]) has its per-output-channel f32 scales in `<name>.scale`
// [out]: w ~= q * scale (gemm_int8.hpp has the quantisation).
inline constexpr const char* kInt8ScaleSuffix = ".scale";

// Hands out the tensors of one checkpoint by name, checking each against the shape the inferred
// architecture expects, and remembers what was taken so that `finish()` can reject tensors the
// architecture does not have. Errors name the file, the tensor, the expected and the found shape.
class WeightSource {
 public:
  // check_only: validate names and shapes without building compute structures (no weight
  // packing), for `inspect`, `convert` and any other whole-file check.
  // Weights go to `be` (packed and owned there).
  explicit WeightSource(const io::Checkpoint& ckpt, bool check_only = false,
                        std::shared_ptr<const backend::Backend> be = backend::cpu_backend())
      : ckpt_(ckpt), be_(std::move(be)), check_only_(check_only) {}
  // Consuming: each tensor leaves `ckpt` when taken, so that its memory goes as soon as the model
  // has converted or packed it (peak memory = the model, not model + file).
  static WeightSource consuming(io::Checkpoint& ckpt,
                                std::shared_ptr<const backend::Backend> be = backend::cpu_backend()) {
    WeightSource ws(ckpt, false, be);
    ws.owned_ = &ckpt;
    return ws;
  }
  bool check_only() const { return check_only_; }
  const backend::Backend& backend() const { return *be_; }
  const std::shared_ptr<const backend::Backend>& backend_ptr() const { return be_; }

  // The tensor `name` with exactly `shape`, converted to `dtype` (zero-copy when the file already
  // holds that dtype).
  Tensor take(const std::string& name, const Shape& shape, DType dtype = DType::f32);
  bool has(const std::string& name) const { return ckpt_.has(name); }
  // take() onto the backend's device: a small constant the model computes with.
  Tensor constant(const std::string& name, const Shape& shape);
  // A linear layer from `<prefix>weight` [out, in] (held in `dtype`: f32, bf16, or i8 = quantised by
  // the backend unless the file holds it as int8 already) and `<prefix>bias` [out] (or the given
  // host bias), packed by the backend; null when check_only. An int8 weight asked for in floating
  // point is dequantised. The layer's weight name and dtype are recorded for weights_in().
  LinearPtr linear(const std::string& prefix, int64_t out, int64_t in, DType dtype);
  LinearPtr linear(const std::string& weight_name, int64_t out, int64_t in, DType dtype, Tensor bias);
  // `<prefix>weight` [out, in, k, k] and `<prefix>bias` [out]; null when check_only.
  ConvPtr conv(const std::string& prefix, int out, int in, int kernel, backend::ConvGeometry geometry);
  // Marks tensors that exist in official files but are not used (buffers, training statistics).
  void ignore(const std::string& name);
  // Error naming the first tensor that nobody took or ignored.
  void finish() const;
  const std::string& path() const { return ckpt_.path; }
  // The weights taken through linear() with `dtype`, in order: with a model built for int8, the
  // ones it holds in int8 (convert --dtype int8 quantises exactly these).
  std::vector<std::string> weights_in(DType dtype) const {
    std::vector<std::string> out;
    for (const auto& [name, dt] : linear_dtypes_)
      if (dt == dtype) out.push_back(name);
    return out;
  }

 private:
  const io::Checkpoint& ckpt_;
  std::shared_ptr<const backend::Backend> be_;
  bool check_only_ = false;
  io::Checkpoint* owned_ = nullptr;
  std::set<std::string> taken_;
  std::vector<std::pair<std::string, DType>> linear_dtypes_;
};

}  // namespace varcode::model
