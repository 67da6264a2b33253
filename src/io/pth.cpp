// PyTorch .pth checkpoints (torch.save's zip container, spec §6): a zip holding `<top>/data.pkl`
// (a pickle that describes the tensors) and one raw storage per `<top>/data/<key>` entry.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "io/checkpoint.hpp"
#include "io/mapped_file.hpp"
#include "io/pickle.hpp"
#include "io/zip_reader.hpp"

namespace varcode::io {

namespace {

using pickle::Kind;
using pickle::StorageType;
using pickle::Value;

std::shared_ptr<uint8_t> alloc_bytes(uint64_t n, const std::string& where) {
  uint64_t rounded = std::max<uint64_t>(64, (n + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw Error(where + ": out of memory allocating " + std::to_string(n) + " bytes");
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
}

DType dtype_of(StorageType t) {
  switch (t) {
    case StorageType::f32:
      return DType::f32;
    case StorageType::f16:
      return DType::f16;
    case StorageType::bf16:
      return DType::bf16;
    case StorageType::i64:
      return DType::i64;
    case StorageType::f64:
      return DType::f32;  // converted on load
  }
  return DType::f32;
}

std::string tuple_str(const std::vector<int64_t>& v) {
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + ")";
}

// One strided row; the element size is a compile-time constant in each branch so that the copies
// are plain loads and stores.
void gather_row(const uint8_t* src, StorageType st, int64_t n, int64_t stride, uint8_t*& dst) {
  auto copy = [&](auto tag) {
    using T = decltype(tag);
    for (int64_t k = 0; k < n; ++k, dst += sizeof(T))
      std::memcpy(dst, src + static_cast<size_t>(k * stride) * sizeof(T), sizeof(T));
  };
  switch (st) {
    case StorageType::f32:
      copy(uint32_t{});
      break;
    case StorageType::f16:
    case StorageType::bf16:
      copy(uint16_t{});
      break;
    case StorageType::i64:
      copy(uint64_t{});
      break;
    case StorageType::f64:
      for (int64_t k = 0; k < n; ++k, dst += 4) {
        double v;
        std::memcpy(&v, src + static_cast<size_t>(k * stride) * 8, 8);
        const float f = static_cast<float>(v);
        std::memcpy(dst, &f, 4);
      }
      break;
  }
}

// Copies a strided view into contiguous `dst`, row by row; f64 sources become f32.
void gather(const uint8_t* src, StorageType st, const Shape& size, const std::vector<int64_t>& stride, uint8_t* dst) {
  const size_t es = pickle::storage_type_size(st);
  const size_t nd = size.size();
  const int64_t inner = nd ? size[nd - 1] : 1;
  const int64_t inner_stride = nd ? stride[nd - 1] : 1;
  int64_t outer = 1;
  for (size_t d = 0; d + 1 < nd; ++d) outer *= size[d];
  std::vector<int64_t> idx(nd, 0);
  for (int64_t o = 0; o < outer; ++o) {
    int64_t base = 0;
    for (size_t d = 0; d + 1 < nd; ++d) base += idx[d] * stride[d];
    if (inner_stride == 1 && st != StorageType::f64) {  // rows of a sliced view: one block each
      std::memcpy(dst, src + static_cast<size_t>(base) * es, static_cast<size_t>(inner) * es);
      dst += static_cast<size_t>(inner) * es;
    } else {
      gather_row(src + static_cast<size_t>(base) * es, st, inner, inner_stride, dst);
    }
    for (size_t d = nd >= 2 ? nd - 2 : 0; nd >= 2; --d) {  // odometer over the outer dims
      if (++idx[d] < size[d]) break;
      idx[d] = 0;
      if (d == 0) break;
    }
  }
}

class PthLoader {
 public:
  // `owner` keeps `data` alive; when null, tensors copy out of `data` instead of borrowing.
  PthLoader(const uint8_t* data, size_t size, const std::string& name, std::shared_ptr<const void> owner)
      : data_(data), size_(size), name_(name), owner_(std::move(owner)), zip_(data, size, name) {
    // Copies (compressed entries, strided views) are bounded by the file size, so that a crafted
    // file cannot make us allocate without limit.
    budget_ = budget_total_ = std::max<uint64_t>(uint64_t{64} << 20, uint64_t{4} * size);
  }

  Checkpoint load() {
    find_pickle();
    check_byteorder();
    pickle::Document doc;
    {
      std::shared_ptr<const uint8_t> holder;
      uint64_t n = 0;
      // Parsed during this call only, so even the in-memory variant may read it in place.
      const uint8_t* pkl = entry_bytes(pkl_index_, prefix_ + "data.pkl", &holder, &n, true);
      pickle::parse(pkl, n, name_ + ": " + prefix_ + "data.pkl", doc);
    }
    const Value* sd = find_state_dict(doc.root, 0);
    if (!sd) throw Error(name_ + ": " + describe_no_tensors(doc.root));
    Checkpoint ck;
    ck.path = name_;
    ck.container = "pth";
    for (const auto& [k, v] : sd->entries) {
      if (v->kind != Kind::tensor) continue;  // e.g. `_extra_state`
      if (k->kind != Kind::string)
        throw Error(name_ + ": a tensor's key is a " + pickle::kind_name(k->kind) + ", expected a str");
      std::string tname = k->s.rfind("module.", 0) == 0 ? k->s.substr(7) : k->s;
      Tensor t = materialize(k->s, *v);
      if (!ck.tensors.emplace(tname, std::move(t)).second)
        throw Error(name_ + ": tensor name '" + tname + "' appears twice (after stripping 'module.')");
    }
    return ck;
  }

 private:
  struct StorageBytes {
    const uint8_t* bytes = nullptr;
    uint64_t nbytes = 0;
    std::shared_ptr<const void> owner;
  };

  // Reserves `count` elements of `elem_size` bytes of copies; checked before allocating.
  void charge(uint64_t count, uint64_t elem_size, const std::string& what) {
    if (count > budget_ / elem_size)
      throw Error(name_ + ": " + what + " would need a copy of " + std::to_string(count) + " x " +
                  std::to_string(elem_size) + " bytes, more than a file of " + std::to_string(size_) +
                  " bytes can justify (overlapping views or inconsistent sizes; copies are limited to " +
                  std::to_string(budget_total_) + " bytes in all)");
    budget_ -= count * elem_size;
  }

  void find_pickle() {
    const uint64_t n = zip_.num_entries();
    for (uint64_t i = 0; i < n; ++i) {
      ZipEntryInfo e = zip_.stat(i);
      const std::string suffix = "/data.pkl";
      if (e.name.size() > suffix.size() && e.name.compare(e.name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
          e.name.find('/') == e.name.size() - suffix.size()) {
        pkl_index_ = i;
        prefix_ = e.name.substr(0, e.name.size() - 8);  // keeps the trailing '/'
        return;
      }
    }
    throw Error(name_ + ": zip archive holds no <folder>/data.pkl: not a torch.save checkpoint");
  }

  void check_byteorder() {
    auto i = zip_.locate(prefix_ + "byteorder");
    if (!i) return;
    ZipEntryInfo e = zip_.stat(*i);
    if (e.size > 16) throw Error(name_ + ": " + e.name + " is " + std::to_string(e.size) + " bytes, expected 'little'");
    std::string s(e.size, '\0');
    if (e.size) zip_.read(*i, s.data());
    if (s != "little") throw Error(name_ + ": byte order '" + s + "' is not supported (expected 'little')");
  }

  // The whole entry: in place when stored (and we may borrow), otherwise a copy.
  const uint8_t* entry_bytes(uint64_t index, const std::string& what, std::shared_ptr<const uint8_t>* holder,
                             uint64_t* n, bool transient = false) {
    ZipEntryInfo e = zip_.stat(index);
    *n = e.size;
    if (e.size == 0) return nullptr;
    std::optional<uint64_t> off = zip_.stored_data_offset(index);
    if (off && (owner_ || transient)) return data_ + *off;
    if (off) {
      charge(e.size, 1, what);
      auto buf = alloc_bytes(e.size, name_);
      std::memcpy(buf.get(), data_ + *off, e.size);
      *holder = buf;
      return buf.get();
    }
    // Deflate cannot expand more than 1032:1; other methods are no excuse for more.
    if (e.stored ? e.size > size_ : e.size / 1100 > e.comp_size)
      throw Error(name_ + ": zip entry '" + e.name + "' claims " + std::to_string(e.size) + " bytes from " +
                  std::to_string(e.comp_size) + " stored bytes");
    charge(e.size, 1, what);
    auto buf = alloc_bytes(e.size, name_);
    zip_.read(index, buf.get());
    *holder = buf;
    return buf.get();
  }

  const StorageBytes& storage(const std::string& key, const std::string& tname) {
    auto it = storages_.find(key);
    if (it != storages_.end()) return it->second;
    const std::string entry = prefix_ + "data/" + key;
    auto index = zip_.locate(entry);
    if (!index)
      throw Error(name_ + ": tensor '" + tname + "': its storage '" + key + "' is missing (no zip entry " + entry +
                  ")");
    StorageBytes sb;
    std::shared_ptr<const uint8_t> holder;
    sb.bytes = entry_bytes(*index, "tensor '" + tname + "'", &holder, &sb.nbytes);
    sb.owner = holder ? std::shared_ptr<const void>(holder) : owner_;
    return storages_.emplace(key, std::move(sb)).first->second;
  }

  Tensor materialize(const std::string& tname, const Value& t) {
    const std::string where = name_ + ": tensor '" + tname + "'";
    const Value& st = *t.storage;
    const size_t es = pickle::storage_type_size(st.storage_type);
    const DType dtype = dtype_of(st.storage_type);
    Shape shape(t.size.begin(), t.size.end());
    int64_t numel = 0;
    try {
      numel = shape_numel(shape);
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
    if (t.offset < 0) throw Error(where + ": negative storage offset " + std::to_string(t.offset));
    for (int64_t s : t.stride)
      if (s < 0) throw Error(where + ": negative stride in " + tuple_str(t.stride));
    const StorageBytes& sb = storage(st.s, tname);
    if (static_cast<uint64_t>(st.storage_numel) > sb.nbytes / es)
      throw Error(where + ": storage '" + st.s + "' claims " + std::to_string(st.storage_numel) +
                  " elements but its entry holds " + std::to_string(sb.nbytes) + " bytes");
    if (numel == 0) return Tensor::empty(dtype, shape);
    // Index of the view's last element; it and the first must lie inside the storage.
    int64_t last = t.offset;
    bool overflow = false;
    for (size_t d = 0; d < shape.size(); ++d) {
      int64_t step;
      overflow |= __builtin_mul_overflow(shape[d] - 1, t.stride[d], &step);
      overflow |= __builtin_add_overflow(last, step, &last);
    }
    if (overflow || last >= st.storage_numel)
      throw Error(where + " (shape " + shape_str(shape) + ", stride " + tuple_str(t.stride) + ", offset " +
                  std::to_string(t.offset) + ") runs past the end of its storage '" + st.s + "' of " +
                  std::to_string(st.storage_numel) + " elements");
    bool contiguous = true;
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1, expect = 1; d >= 0; --d) {
      if (shape[d] != 1 && t.stride[d] != expect) contiguous = false;
      expect *= shape[d];
    }
    const uint8_t* src = sb.bytes + static_cast<uint64_t>(t.offset) * es;
    if (contiguous && st.storage_type != StorageType::f64 && reinterpret_cast<uintptr_t>(src) % es == 0)
      return Tensor::borrow(dtype, shape, src, sb.owner);
    charge(static_cast<uint64_t>(numel), dtype_size(dtype), "tensor '" + tname + "'");
    Tensor out = Tensor::empty(dtype, shape);
    gather(src, st.storage_type, shape, t.stride, static_cast<uint8_t*>(out.raw()));
    return out;
  }

  static bool has_tensor_values(const Value* d) {
    return std::any_of(d->entries.begin(), d->entries.end(),
                       [](const auto& e) { return e.second->kind == Kind::tensor; });
  }

  // The dict of tensors: the top object itself, or one nested under a conventional key.
  static const Value* find_state_dict(const Value* v, int depth) {
    if (!v || v->kind != Kind::dict) return nullptr;
    if (has_tensor_values(v)) return v;
    if (depth >= 4) return nullptr;  // also stops on dicts that contain themselves
    for (const char* key :
         {"state_dict", "model", "module", "ema", "model_ema", "net", "params", "trainer", "var_wo_ddp"})
      if (const Value* r = find_state_dict(pickle::dict_get(v, key), depth + 1)) return r;
    return nullptr;
  }

  static std::string describe_no_tensors(const Value* root) {
    if (root->kind != Kind::dict)
      return std::string("the pickled object is a ") + pickle::kind_name(root->kind) + ", expected a dict of tensors";
    std::string keys;
    size_t shown = 0;
    for (const auto& [k, v] : root->entries) {
      if (shown++ == 8) {
        keys += ", ...";
        break;
      }
      keys += (keys.empty() ? "'" : ", '") +
              (k->kind == Kind::string ? k->s : std::string(pickle::kind_name(k->kind))) + "'";
    }
    return "no tensors found: the top-level dict has keys [" + keys +
           "] and none of 'state_dict', 'model', 'module', 'ema', 'trainer' holds a dict of tensors";
  }

  const uint8_t* data_;
  size_t size_;
  std::string name_;
  std::shared_ptr<const void> owner_;
  ZipReader zip_;
  uint64_t budget_ = 0, budget_total_ = 0;
  uint64_t pkl_index_ = 0;
  std::string prefix_;
  std::unordered_map<std::string, StorageBytes> storages_;
};

}  // namespace

Checkpoint load_pth(const std::string& path) {
  auto m = MappedFile::open(path);
  if (m->size() == 0) throw Error(path + ": empty file, expected a .pth (zip) checkpoint");
  std::shared_ptr<const void> owner(m, m->data());
  Checkpoint ck = PthLoader(m->data(), m->size(), path, owner).load();
  ck.mapping = m;
  return ck;
}

Checkpoint load_pth_from_memory(const void* data, size_t size, const std::string& name) {
  if (size == 0) throw Error(name + ": empty file, expected a .pth (zip) checkpoint");
  return PthLoader(static_cast<const uint8_t*>(data), size, name, nullptr).load();
}

}  // namespace varcode::io
