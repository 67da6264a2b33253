#include "model/weights.hpp"

namespace varcode::model {

Tensor WeightSource::take(const std::string& name, const Shape& shape, DType dtype) {
  if (!ckpt_.has(name))
    throw Error(ckpt_.path + ": missing tensor '" + name + "' (expected shape " + shape_str(shape) + ")");
  const Tensor& t = ckpt_.tensors.at(name);
  if (t.shape() != shape)
    throw Error(ckpt_.path + ": tensor '" + name + "' has shape " + shape_str(t.shape()) + ", expected " +
                shape_str(shape));
  if (t.dtype() == DType::i64 && dtype != DType::i64)
    throw Error(ckpt_.path + ": tensor '" + name + "' is int64, expected a floating-point tensor");
  taken_.insert(name);
  return t.dtype() == dtype ? t : t.to(dtype);
}

void WeightSource::ignore(const std::string& name) { taken_.insert(name); }

void WeightSource::finish() const {
  for (const auto& [name, t] : ckpt_.tensors) {
    if (!taken_.count(name))
      throw Error(ckpt_.path + ": unexpected tensor '" + name + "' " + shape_str(t.shape()) +
                  " (not part of the inferred architecture)");
  }
}

}  // namespace varcode::model
