#include "model/weights.hpp"

#include <malloc.h>

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
  if (t.dtype() == DType::i8 && dtype != DType::i8)
    throw Error(ckpt_.path + ": tensor '" + name + "' is int8, but only linear-layer weights may be (with '" + name +
                kInt8ScaleSuffix + "' beside them)");
  if (dtype == DType::i8 && t.dtype() != DType::i8)
    throw Error("internal: tensor '" + name + "' taken as int8 from " + dtype_name(t.dtype()));
  taken_.insert(name);
  Tensor out = t.dtype() == dtype ? t : t.to(dtype);
  if (owned_) {
    // Small tensors are copied so that nothing keeps a file mapping alive after loading.
    if (out.raw() == t.raw() && out.numel() < (1 << 20)) out = out.clone();
    // A converted tensor's file pages are done with: drop them now rather than when the whole
    // file is unmapped, so that loading an f32 file for bf16 peaks at ~the model, not model + file.
    if (out.raw() != t.raw() && owned_->mapping) owned_->mapping->release(t.raw(), t.nbytes());
    owned_->tensors.erase(name);
  }
  return out;
}

Tensor WeightSource::constant(const std::string& name, const Shape& shape) {
  Tensor t = take(name, shape);
  return check_only_ ? t : be_->constant(t);
}

LinearPtr WeightSource::linear(const std::string& prefix, int64_t out, int64_t in, DType dtype) {
  return linear(prefix + "weight", out, in, dtype, take(prefix + "bias", {out}));
}

ConvPtr WeightSource::conv(const std::string& prefix, int out, int in, int kernel, backend::ConvGeometry geometry) {
  Tensor w = take(prefix + "weight", {out, in, kernel, kernel});  // [out, in, k, k]
  Tensor b = take(prefix + "bias", {out});                        // [out]
  if (check_only_) return nullptr;
  return be_->conv_weights(w, b, geometry);
}

namespace {
// An in-memory checkpoint's tensor (random:dNN weights) freed after packing goes back to malloc's
// free lists, where the next packed layer, a little larger, does not fit: without this the
// process keeps both the model and most of its source resident until loading ends.
void return_freed_pages(size_t freed_bytes) {
#ifdef __GLIBC__
  if (freed_bytes >= (size_t{1} << 20)) malloc_trim(0);
#else
  (void)freed_bytes;
#endif
}
}  // namespace

LinearPtr WeightSource::linear(const std::string& weight_name, int64_t out, int64_t in, DType dtype, Tensor bias) {
  linear_dtypes_.emplace_back(weight_name, dtype);
  if (ckpt_.has(weight_name) && ckpt_.tensors.at(weight_name).dtype() == DType::i8) {
    // An int8 file (convert --dtype int8): the weight and its per-channel scales.
    Tensor q = take(weight_name, {out, in}, DType::i8);          // [out, in]
    Tensor scale = take(weight_name + kInt8ScaleSuffix, {out});  // [out]
    if (check_only_) return nullptr;
    LinearPtr layer = be_->int8_linear_weights(q, scale, bias, dtype);
    const size_t q_bytes = q.nbytes();
    const bool in_memory = owned_ && !owned_->mapping;
    q = Tensor();
    if (in_memory) return_freed_pages(q_bytes);
    return layer;
  }
  if (ckpt_.has(weight_name + kInt8ScaleSuffix))
    throw Error(ckpt_.path + ": tensor '" + weight_name + kInt8ScaleSuffix + "' holds int8 scales, but '" +
                weight_name + "' is not int8");
  // Validation keeps the file's dtype: converting 2 B parameters only to check names is waste.
  // int8 is quantised from f32 (the file's values, exactly).
  const DType load_dtype = dtype == DType::i8 ? DType::f32 : dtype;
  Tensor w =
      take(weight_name, {out, in}, check_only_ ? ckpt_.tensors.at(weight_name).dtype() : load_dtype);  // [out, in]
  if (check_only_) return nullptr;
  const void* src = w.raw();
  const size_t src_bytes = w.nbytes();
  LinearPtr layer = be_->linear_weights(w, bias, dtype);  // packs (or quantises) a copy
  w = Tensor();
  if (owned_ && owned_->mapping) owned_->mapping->release(src, src_bytes);
  if (owned_ && !owned_->mapping) return_freed_pages(src_bytes);
  return layer;
}

void WeightSource::ignore(const std::string& name) {
  taken_.insert(name);
  if (owned_) owned_->tensors.erase(name);
}

void WeightSource::finish() const {
  for (const auto& [name, t] : ckpt_.tensors) {  // what is left (consumed tensors are gone)
    if (!taken_.count(name))
      throw Error(ckpt_.path + ": unexpected tensor '" + name + "' " + shape_str(t.shape()) +
                  " (not part of the inferred architecture)");
  }
}

}  // namespace varcode::model
