#include "varcode/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace varcode {

size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::i64: return 8;
    case DType::i8: return 1;
  }
  return 0;
}

const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::i64: return "i64";
    case DType::i8: return "i8";
  }
  return "?";
}

DType parse_dtype(const std::string& name, const std::string& what) {
  if (name == "f32" || name == "float32") return DType::f32;
  if (name == "f16" || name == "float16") return DType::f16;
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  if (name == "i64" || name == "int64") return DType::i64;
  if (name == "i8" || name == "int8") return DType::i8;
  throw Error(what + ": unknown dtype '" + name + "' (expected f32, f16, bf16, i64 or int8)");
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error("negative dimension in shape " + shape_str(shape));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw Error("element count of shape " + shape_str(shape) + " overflows");
    n *= d;
  }
  return n;
}

namespace {
std::shared_ptr<void> aligned_alloc_bytes(size_t nbytes) {
  size_t rounded = (nbytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw Error("out of memory allocating " + std::to_string(nbytes) + " bytes");
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}
}  // namespace

Tensor Tensor::empty(DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  auto mem = aligned_alloc_bytes(t.nbytes());
  t.data_ = mem.get();
  t.owner_ = std::move(mem);
  return t;
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  Tensor t = empty(dtype, std::move(shape));
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::borrow(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  t.data_ = const_cast<void*>(data);
  t.owner_ = std::move(owner);
  return t;
}

int64_t Tensor::dim(int i) const {
  int n = ndim();
  int j = i < 0 ? i + n : i;
  if (j < 0 || j >= n) throw Error("dim " + std::to_string(i) + " out of range for shape " + shape_str(shape_));
  return shape_[static_cast<size_t>(j)];
}

Tensor Tensor::reshape(Shape shape) const {
  if (shape_numel(shape) != numel_) throw Error("cannot reshape " + shape_str(shape_) + " to " + shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::slice(int64_t begin, int64_t count) const {
  if (ndim() == 0 || begin < 0 || count < 0 || begin + count > shape_[0])
    throw Error("cannot take entries [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                ") of the first dimension of " + shape_str(shape_));
  Tensor t = *this;
  t.shape_[0] = count;
  t.numel_ = shape_numel(t.shape_);
  const int64_t per = shape_[0] ? numel_ / shape_[0] : 0;
  t.data_ = static_cast<char*>(data_) + static_cast<size_t>(begin * per) * dtype_size(dtype_);
  return t;
}

Tensor Tensor::view(DType dtype, Shape shape) const {
  const int64_t n = shape_numel(shape);
  if (static_cast<size_t>(n) * dtype_size(dtype) > nbytes())
    throw Error("internal: a view of " + shape_str(shape) + " does not fit in a tensor of " + shape_str(shape_));
  Tensor t = *this;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.numel_ = n;
  return t;
}

std::string device_name(Device d) {
  switch (d.type) {
    case DeviceType::cpu:
      return "cpu";
    case DeviceType::cuda:
      return "cuda:" + std::to_string(d.index);
    case DeviceType::emulated:
      return "emulated:" + std::to_string(d.index);
  }
  return "?";
}

float bf16_to_f32(uint16_t v) {
  uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_bf16(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// The compiler's IEEE half type does the rounding (nearest-even, subnormals, overflow to inf).
float f16_to_f32(uint16_t h) {
  _Float16 v;
  std::memcpy(&v, &h, 2);
  return static_cast<float>(v);
}

uint16_t f32_to_f16(float f) {
  _Float16 v = static_cast<_Float16>(f);
  uint16_t h;
  std::memcpy(&h, &v, 2);
  return h;
}

Tensor Tensor::to(DType dtype) const {
  if (device_.type == DeviceType::cuda)
    throw Error("internal: a " + device_name(device_) + " tensor cannot be converted on the host");
  Tensor out = empty(dtype, shape_);
  const int64_t n = numel_;
  if (dtype == dtype_) {
    std::memcpy(out.data_, data_, nbytes());
    return out;
  }
  auto load = [&](int64_t i) -> double {
    switch (dtype_) {
      case DType::f32: return static_cast<const float*>(data_)[i];
      case DType::f16: return f16_to_f32(static_cast<const uint16_t*>(data_)[i]);
      case DType::bf16: return bf16_to_f32(static_cast<const uint16_t*>(data_)[i]);
      case DType::i64: return static_cast<double>(static_cast<const int64_t*>(data_)[i]);
      case DType::i8: return static_cast<const int8_t*>(data_)[i];
    }
    return 0;
  };
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    double v = load(i);
    switch (dtype) {
      case DType::f32: static_cast<float*>(out.data_)[i] = static_cast<float>(v); break;
      case DType::f16: static_cast<uint16_t*>(out.data_)[i] = f32_to_f16(static_cast<float>(v)); break;
      case DType::bf16: static_cast<uint16_t*>(out.data_)[i] = f32_to_bf16(static_cast<float>(v)); break;
      case DType::i64: static_cast<int64_t*>(out.data_)[i] = static_cast<int64_t>(v); break;
      // The nearest value in range: a plain conversion (quantisation comes with its scales).
      case DType::i8: static_cast<int8_t*>(out.data_)[i] = static_cast<int8_t>(std::nearbyint(std::clamp(v, -128.0, 127.0))); break;
    }
  }
  return out;
}

}  // namespace varcode
