// Reusable activation buffers for the VQ-VAE's forward passes.
//
// A 256 px decode walks through ~100 activation maps of up to 42 MB each; allocating each afresh
// costs page faults on first touch (~7% of the profile). A BufferPool keeps its slabs between
// layers and between calls, so after the first decode of a shape no large allocation is made.
#pragma once
#include <memory>
#include <mutex>
#include <vector>

#include "backend/backend.hpp"
#include "varcode/tensor.hpp"

namespace varcode::model {

// Single-threaded: one forward pass uses one pool at a time (see BufferPools). Slabs live on the
// backend's device.
class BufferPool {
 public:
  explicit BufferPool(std::shared_ptr<const backend::Backend> be = backend::cpu_backend()) : be_(std::move(be)) {}
  // A tensor of `shape` on a free slab (the smallest free one that fits, else a new one, which
  // replaces the largest free slab that is too small so that the count stays bounded). The slab
  // is busy until release(); the tensor does not own it and must not outlive the pool.
  Tensor acquire(DType dtype, const Shape& shape);
  // Marks the slab of a tensor from acquire() free. Error for a tensor not from this pool.
  void release(const Tensor& t);
  size_t slab_count() const { return slabs_.size(); }
  // Marks every slab free: the end of a forward pass, including one left by an exception.
  void release_all() {
    for (Slab& s : slabs_) s.busy = false;
  }

 private:
  struct Slab {
    Tensor storage;  // [bytes] raw
    bool busy = false;
  };
  std::shared_ptr<const backend::Backend> be_;
  std::vector<Slab> slabs_;
};

// Pools lent to concurrent forward passes of one immutable model and kept between calls.
class BufferPools {
 public:
  explicit BufferPools(std::shared_ptr<const backend::Backend> be = backend::cpu_backend()) : be_(std::move(be)) {}
  class Lease {
   public:
    Lease(BufferPools& owner, std::unique_ptr<BufferPool> pool) : owner_(owner), pool_(std::move(pool)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();
    BufferPool& pool() { return *pool_; }

   private:
    BufferPools& owner_;
    std::unique_ptr<BufferPool> pool_;
  };
  Lease lease();

 private:
  std::shared_ptr<const backend::Backend> be_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<BufferPool>> idle_;
};

}  // namespace varcode::model
