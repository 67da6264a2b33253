#include "model/buffer_pool.hpp"

namespace varcode::model {

Tensor BufferPool::acquire(DType dtype, const Shape& shape) {
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  Slab* best = nullptr;       // smallest free slab that fits
  Slab* too_small = nullptr;  // largest free slab that does not
  for (Slab& s : slabs_) {
    if (s.busy) continue;
    if (s.storage.nbytes() >= bytes) {
      if (!best || s.storage.nbytes() < best->storage.nbytes()) best = &s;
    } else if (!too_small || s.storage.nbytes() > too_small->storage.nbytes()) {
      too_small = &s;
    }
  }
  if (!best) {
    // Round up to 64 KiB so that slightly different shapes share slabs.
    const int64_t rounded = static_cast<int64_t>(((bytes + 65535) / 65536) * 65536);
    Tensor storage = be_->alloc(DType::f32, {rounded / 4});  // [bytes / 4]
    if (too_small) {
      too_small->storage = std::move(storage);
      best = too_small;
    } else {
      slabs_.push_back({std::move(storage), false});
      best = &slabs_.back();
    }
  }
  best->busy = true;
  return best->storage.view(dtype, shape);  // shares (and keeps alive) the slab's storage
}

void BufferPool::release(const Tensor& t) {
  for (Slab& s : slabs_)
    if (s.busy && s.storage.raw() == t.raw()) {
      s.busy = false;
      return;
    }
  throw Error("BufferPool: released a tensor that is not a busy slab of this pool");
}

BufferPools::Lease::~Lease() {
  pool_->release_all();
  std::lock_guard<std::mutex> lock(owner_.mutex_);
  owner_.idle_.push_back(std::move(pool_));
}

BufferPools::Lease BufferPools::lease() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (idle_.empty()) return Lease(*this, std::make_unique<BufferPool>(be_));
  std::unique_ptr<BufferPool> p = std::move(idle_.back());
  idle_.pop_back();
  return Lease(*this, std::move(p));
}

}  // namespace varcode::model
