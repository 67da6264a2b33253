// The one checked accessor through which every model takes its tensors from a checkpoint.
#pragma once
#include <set>
#include <string>
#include <vector>

#include "io/checkpoint.hpp"
#include "kernels/cpu/gemm.hpp"
#include "varcode/tensor.hpp"

namespace varcode::model {

// Hands out the tensors of one checkpoint by name, checking each against the shape the inferred
// architecture expects, and remembers what was taken so that `finish()` can reject tensors the
// architecture does not have. Errors name the file, the tensor, the expected and the found shape.
class WeightSource {
 public:
  // check_only: validate names and shapes without building compute structures (no weight
  // packing), for `inspect`, `convert` and any other whole-file check.
  explicit WeightSource(const io::Checkpoint& ckpt, bool check_only = false) : ckpt_(ckpt), check_only_(check_only) {}
  // Consuming: each tensor leaves `ckpt` when taken, so that its memory goes as soon as the model
  // has converted or packed it (peak memory = the model, not model + file).
  static WeightSource consuming(io::Checkpoint& ckpt) {
    WeightSource ws(ckpt);
    ws.owned_ = &ckpt;
    return ws;
  }
  bool check_only() const { return check_only_; }

  // The tensor `name` with exactly `shape`, converted to `dtype` (zero-copy when the file already
  // holds that dtype).
  Tensor take(const std::string& name, const Shape& shape, DType dtype = DType::f32);
  bool has(const std::string& name) const { return ckpt_.has(name); }
  // A linear layer from `<prefix>weight` [out, in] (held in `dtype`) and `<prefix>bias` [out]
  // (or the given bias); an empty layer when check_only.
  kernels::cpu::Linear linear(const std::string& prefix, int64_t out, int64_t in, DType dtype);
  kernels::cpu::Linear linear(const std::string& weight_name, int64_t out, int64_t in, DType dtype, Tensor bias);
  // Marks tensors that exist in official files but are not used (buffers, training statistics).
  void ignore(const std::string& name);
  // Error naming the first tensor that nobody took or ignored.
  void finish() const;
  const std::string& path() const { return ckpt_.path; }

 private:
  const io::Checkpoint& ckpt_;
  bool check_only_ = false;
  io::Checkpoint* owned_ = nullptr;
  std::set<std::string> taken_;
};

}  // namespace varcode::model
