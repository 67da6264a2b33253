// safetensors: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data section that the offsets index.
#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"
#include "io/mapped_file.hpp"

namespace varcode::io {

namespace {

// The reference implementation refuses headers above 100 MB; so do we (bounded allocation).
constexpr uint64_t kMaxHeader = 100'000'000;

DType parse_st_dtype(const std::string& s, const std::string& where) {
  if (s == "F32") return DType::f32;
  if (s == "F16") return DType::f16;
  if (s == "BF16") return DType::bf16;
  if (s == "I64") return DType::i64;
  if (s == "I8") return DType::i8;
  throw Error(where + ": unsupported dtype '" + s + "' (expected F32, F16, BF16, I64 or I8)");
}

const char* st_dtype_name(DType d) {
  switch (d) {
    case DType::f32:
      return "F32";
    case DType::f16:
      return "F16";
    case DType::bf16:
      return "BF16";
    case DType::i64:
      return "I64";
    case DType::i8:
      return "I8";
  }
  return "?";
}

uint64_t as_u64(const nlohmann::json& j, const std::string& where) {
  if (!j.is_number_unsigned()) throw Error(where + " is not a non-negative integer");
  return j.get<uint64_t>();
}

}  // namespace

Checkpoint load_safetensors(const std::string& path) {
  auto m = MappedFile::open(path);
  const uint8_t* p = m->data();
  const uint64_t n = m->size();
  if (n < 8) throw Error(path + ": too short for a safetensors file (" + std::to_string(n) + " bytes)");
  uint64_t hlen = 0;
  for (int k = 0; k < 8; ++k) hlen |= static_cast<uint64_t>(p[k]) << (8 * k);
  if (hlen > n - 8)
    throw Error(path + ": safetensors header length " + std::to_string(hlen) + " runs past the end of the file (" +
                std::to_string(n) + " bytes)");
  if (hlen > kMaxHeader)
    throw Error(path + ": safetensors header of " + std::to_string(hlen) + " bytes exceeds the 100 MB limit");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(p + 8, p + 8 + hlen);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": safetensors header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw Error(path + ": safetensors header is not a JSON object");
  const uint8_t* data = p + 8 + hlen;
  const uint64_t data_size = n - 8 - hlen;
  std::shared_ptr<const void> owner(m, m->data());
  Checkpoint ck;
  ck.path = path;
  ck.container = "safetensors";
  ck.mapping = m;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) throw Error(path + ": __metadata__ is not a JSON object");
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) throw Error(path + ": __metadata__ value for '" + k + "' is not a string");
        ck.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
      throw Error(where + ": expected an object with dtype, shape and data_offsets");
    if (!info["dtype"].is_string()) throw Error(where + ": dtype is not a string");
    const DType dt = parse_st_dtype(info["dtype"].get<std::string>(), where);
    const auto& js = info["shape"];
    const auto& jo = info["data_offsets"];
    if (!js.is_array() || js.size() > 64) throw Error(where + ": shape is not an array of at most 64 dimensions");
    if (!jo.is_array() || jo.size() != 2) throw Error(where + ": data_offsets is not a [begin, end] pair");
    Shape shape;
    for (const auto& d : js) {
      uint64_t v = as_u64(d, where + ": a shape dimension");
      if (v > static_cast<uint64_t>(INT64_MAX)) throw Error(where + ": dimension " + std::to_string(v) + " too large");
      shape.push_back(static_cast<int64_t>(v));
    }
    int64_t numel;
    try {
      numel = shape_numel(shape);
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
    const uint64_t begin = as_u64(jo[0], where + ": data_offsets[0]");
    const uint64_t end = as_u64(jo[1], where + ": data_offsets[1]");
    if (begin > end || end > data_size)
      throw Error(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                  "] lie outside the data section of " + std::to_string(data_size) + " bytes");
    const uint64_t es = dtype_size(dt);
    if (static_cast<uint64_t>(numel) > (end - begin) / es || static_cast<uint64_t>(numel) * es != end - begin)
      throw Error(where + ": shape " + shape_str(shape) + " of " + dtype_name(dt) + " needs " +
                  std::to_string(static_cast<uint64_t>(numel) * es) + " bytes, data_offsets span " +
                  std::to_string(end - begin));
    const uint8_t* src = data + begin;
    Tensor t;
    if (reinterpret_cast<uintptr_t>(src) % es == 0) {
      t = Tensor::borrow(dt, shape, src, owner);
    } else {
      t = Tensor::empty(dt, shape);  // bounded: its bytes lie inside the file
      if (numel) std::memcpy(t.raw(), src, t.nbytes());
    }
    ck.tensors.emplace(name, std::move(t));
  }
  return ck;
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // The format forbids holes between tensors, so alignment comes from the order: whole multiples
  // of 64 bytes first (each stays 64-byte aligned), then the rest by falling element size (each
  // stays aligned to its element).
  std::vector<const std::pair<const std::string, Tensor>*> order;
  for (const auto& kv : tensors) order.push_back(&kv);
  std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) {
    auto rank = [](const Tensor& t) { return t.nbytes() % 64 == 0 ? 0 : 16 - static_cast<int>(dtype_size(t.dtype())); };
    return rank(a->second) < rank(b->second);
  });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json md = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) md[k] = v;
    header["__metadata__"] = md;
  }
  uint64_t offset = 0;
  for (const auto* kv : order) {
    const Tensor& t = kv->second;
    if (!t.defined()) throw Error(path + ": tensor '" + kv->first + "' is undefined");
    header[kv->first] = {
        {"dtype", st_dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  // Pad with spaces (allowed JSON whitespace) so that the data section starts 64-byte aligned.
  const size_t padded = (8 + text.size() + 63) / 64 * 64 - 8;
  text.append(padded - text.size(), ' ');
  write_atomically(path, [&](const std::string& tmp) {
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error(path + ": cannot create " + tmp);
    uint8_t len[8];
    for (int k = 0; k < 8; ++k) len[k] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * k));
    bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(text.data(), 1, text.size(), f) == text.size();
    for (const auto* kv : order) {
      const Tensor& t = kv->second;
      if (ok && t.nbytes()) ok = std::fwrite(t.raw(), 1, t.nbytes(), f) == t.nbytes();
    }
    ok = (std::fclose(f) == 0) && ok;
    if (!ok) throw Error(path + ": write failed (disk full?)");
  });
}

}  // namespace varcode::io
