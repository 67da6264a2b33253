// A restricted pickle reader for PyTorch state dicts: it recognises the few opcodes and globals
// that torch.save emits for a dict of tensors and refuses everything else. Nothing is executed:
// the allowed globals are interpreted by name into plain values.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace varcode::io::pickle {

enum class Kind { none, boolean, integer, floating, string, tuple, list, dict, global, storage, tensor };
const char* kind_name(Kind k);

// The element types a torch storage can have here. f64 is accepted and converted to f32 by the
// loader (Tensor has no f64).
enum class StorageType { f32, f16, bf16, i64, f64 };
size_t storage_type_size(StorageType t);

struct Value {
  Kind kind = Kind::none;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                    // string value; global: "module.name"; storage: the key of its data/ entry
  std::vector<const Value*> items;  // tuple, list
  std::vector<std::pair<const Value*, const Value*>> entries;  // dict, in insertion order
  std::unordered_map<std::string, size_t> index;               // dict: key identity -> position in entries
  // storage (from a persistent id)
  StorageType storage_type = StorageType::f32;
  int64_t storage_numel = 0;
  // tensor (from _rebuild_tensor_v2)
  const Value* storage = nullptr;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
};

// Owns every value built while reading one pickle; values point at each other by address, so
// cycles (a dict that contains itself) cannot leak.
class Document {
 public:
  Value* make(Kind k) {
    values_.emplace_back();
    values_.back().kind = k;
    return &values_.back();
  }
  const Value* root = nullptr;

 private:
  std::deque<Value> values_;
};

// Dict lookup by string key; nullptr when absent or `dict` is not a dict.
const Value* dict_get(const Value* dict, const std::string& key);

// Parses `data` (a torch data.pkl). `where` prefixes every error message (file and entry name).
// Throws varcode::Error on any opcode or global outside the allowed set, on malformed input and
// on arguments of the wrong type for the allowed globals.
void parse(const uint8_t* data, size_t size, const std::string& where, Document& doc);

}  // namespace varcode::io::pickle
