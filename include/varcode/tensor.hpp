// varcode: a minimal dense tensor (contiguous, row-major), owning or borrowing its bytes.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "varcode/error.hpp"

namespace varcode {

// i8: int8 weights, quantised per output channel; the file holds each one's f32 scales beside it
// (README.md, "int8").
enum class DType { f32, f16, bf16, i64, i8 };

size_t dtype_size(DType dt);
const char* dtype_name(DType dt);
// Parses "f32", "f16", "bf16", "i64", "i8" (or "int8"); throws Error naming `what` otherwise.
DType parse_dtype(const std::string& name, const std::string& what);

using Shape = std::vector<int64_t>;

// Where a tensor's bytes live. cpu = host memory. emulated = host memory that a test backend treats
// as another device's (it proves what crosses between host and device).
enum class DeviceType : uint8_t { cpu, cuda, emulated };
struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  bool operator==(const Device&) const = default;
};
std::string device_name(Device d);          // "cpu", "cuda:0", "emulated:0"
std::string shape_str(const Shape& shape);  // "[2, 3, 4]"
// Element count; throws Error when a dim is negative or the product overflows int64.
int64_t shape_numel(const Shape& shape);

// A contiguous row-major tensor. Storage is shared (copying a Tensor copies a handle), so a
// tensor can point into a memory-mapped checkpoint without owning a copy of the bytes.
class Tensor {
 public:
  Tensor() = default;
  // 64-byte aligned heap storage, uninitialised / zeroed.
  static Tensor empty(DType dtype, Shape shape);
  static Tensor zeros(DType dtype, Shape shape);
  // Borrow `data`; `owner` keeps it alive (e.g. the file mapping).
  static Tensor borrow(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> owner);

  bool defined() const { return data_ != nullptr; }
  Device device() const { return device_; }
  // The same storage tagged as living on `d` (for a backend's allocator; copies nothing).
  Tensor on(Device d) const {
    Tensor t = *this;
    t.device_ = d;
    return t;
  }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const;  // negative i counts from the end
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }

  template <class T>
  T* data() {
    return static_cast<T*>(data_);
  }
  template <class T>
  const T* data() const {
    return static_cast<const T*>(data_);
  }
  const void* raw() const { return data_; }
  void* raw() { return data_; }

  // Same storage, new shape (same element count, else Error).
  Tensor reshape(Shape shape) const;
  // Same storage: entries [begin, begin + count) of the first dimension.
  Tensor slice(int64_t begin, int64_t count) const;
  // Same storage and device: its first bytes as a `dtype` tensor of `shape` (which must fit).
  Tensor view(DType dtype, Shape shape) const;
  // Converted copy (always a fresh host buffer, even for the same dtype). Host-addressable
  // tensors only (cpu, emulated).
  Tensor to(DType dtype) const;
  Tensor clone() const { return to(dtype_); }

 private:
  DType dtype_ = DType::f32;
  Device device_;
  Shape shape_;
  int64_t numel_ = 0;
  std::shared_ptr<const void> owner_;
  void* data_ = nullptr;
};

// bf16 / f16 <-> f32 scalar conversions (round-to-nearest-even for bf16).
float bf16_to_f32(uint16_t v);
uint16_t f32_to_bf16(float v);
float f16_to_f32(uint16_t v);
uint16_t f32_to_f16(float v);

}  // namespace varcode
