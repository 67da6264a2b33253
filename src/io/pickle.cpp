#include "io/pickle.hpp"

#include <cstring>
#include <set>

#include "varcode/error.hpp"

namespace varcode::io::pickle {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::none: return "None";
    case Kind::boolean: return "bool";
    case Kind::integer: return "int";
    case Kind::floating: return "float";
    case Kind::string: return "str";
    case Kind::tuple: return "tuple";
    case Kind::list: return "list";
    case Kind::dict: return "dict";
    case Kind::global: return "global";
    case Kind::storage: return "storage";
    case Kind::tensor: return "tensor";
  }
  return "?";
}

size_t storage_type_size(StorageType t) {
  switch (t) {
    case StorageType::f32: return 4;
    case StorageType::f16: return 2;
    case StorageType::bf16: return 2;
    case StorageType::i64: return 8;
    case StorageType::f64: return 8;
  }
  return 1;
}

namespace {

// Names of every pickle opcode, so that a refused one is reported by name.
const char* opcode_name(uint8_t op) {
  switch (op) {
    case '(': return "MARK";
    case '.': return "STOP";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'F': return "FLOAT";
    case 'I': return "INT";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'L': return "LONG";
    case 'M': return "BININT2";
    case 'N': return "NONE";
    case 'P': return "PERSID";
    case 'Q': return "BINPERSID";
    case 'R': return "REDUCE";
    case 'S': return "STRING";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";
    case 'X': return "BINUNICODE";
    case 'a': return "APPEND";
    case 'b': return "BUILD";
    case 'c': return "GLOBAL";
    case 'd': return "DICT";
    case '}': return "EMPTY_DICT";
    case 'e': return "APPENDS";
    case 'g': return "GET";
    case 'h': return "BINGET";
    case 'i': return "INST";
    case 'j': return "LONG_BINGET";
    case 'l': return "LIST";
    case ']': return "EMPTY_LIST";
    case 'o': return "OBJ";
    case 'p': return "PUT";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 's': return "SETITEM";
    case 't': return "TUPLE";
    case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS";
    case 'G': return "BINFLOAT";
    case 0x80: return "PROTO";
    case 0x81: return "NEWOBJ";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL";
    case 0x94: return "MEMOIZE";
    case 0x95: return "FRAME";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
  }
  return "unknown";
}

const std::set<std::string>& allowed_globals() {
  static const std::set<std::string> g = {
      "collections.OrderedDict",
      "torch._utils._rebuild_tensor_v2",
      "torch._utils._rebuild_parameter",
      "torch.FloatStorage",
      "torch.HalfStorage",
      "torch.BFloat16Storage",
      "torch.LongStorage",
      "torch.DoubleStorage",
  };
  return g;
}

bool storage_type_of(const std::string& global, StorageType* t) {
  static const std::pair<const char*, StorageType> types[] = {
      {"torch.FloatStorage", StorageType::f32},     {"torch.HalfStorage", StorageType::f16},
      {"torch.BFloat16Storage", StorageType::bf16}, {"torch.LongStorage", StorageType::i64},
      {"torch.DoubleStorage", StorageType::f64},
  };
  for (const auto& [name, type] : types)
    if (global == name) return *t = type, true;
  return false;
}

// What a pickle may make us allocate, per byte of the pickle, above a fixed 1 MiB: every opcode
// that allocates is charged (a value, a string's bytes, a container's slots, a mark, a memo
// entry, a stack slot) and the reader fails past the budget. Torch state dicts measure ~30 bytes
// per byte (the shipped models' and the fixtures' data.pkl); without a bound a 64 MB pickle of
// one-byte EMPTY_DICT opcodes asked for ~15 GB.
constexpr size_t kBytesPerPickleByte = 64;
constexpr size_t kFixedBudget = size_t{1} << 20;

class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& where, Document& doc)
      : p_(data), n_(size), where_(where), doc_(doc), budget_(kFixedBudget + kBytesPerPickleByte * size) {}

  void run() {
    while (true) {
      op_pos_ = pos_;
      uint8_t op = u8();
      switch (op) {
        case 0x80: proto(); break;
        case '}': push(make(Kind::dict)); break;
        case ']': push(make(Kind::list)); break;
        case ')': push(shared(Kind::tuple)); break;
        case '(':
          charge(sizeof(size_t));
          marks_.push_back(stack_.size());
          break;
        case 'N': push(shared(Kind::none)); break;
        case 0x88: push(shared(Kind::boolean, true)); break;
        case 0x89: push(shared(Kind::boolean, false)); break;
        case 'K': push_int(u8()); break;
        case 'M': push_int(le(2)); break;
        case 'J': push_int(static_cast<int32_t>(static_cast<uint32_t>(le(4)))); break;
        case 0x8a: long1(); break;
        case 'G': binfloat(); break;
        case 'X': push_string(le(4)); break;
        case 0x8c: push_string(u8()); break;
        case 'c': global(); break;
        case 't': push_tuple(pop_mark()); break;
        case 0x85: push_tuple(stack_.size() - 1); break;
        case 0x86: push_tuple(stack_.size() - 2); break;
        case 0x87: push_tuple(stack_.size() - 3); break;
        case 'Q': persistent_id(); break;
        case 'R': reduce(); break;
        case 'b': build(); break;
        case 's': setitems(stack_.size() - 2); break;
        case 'u': setitems(pop_mark()); break;
        case 'a': appends(stack_.size() - 1); break;
        case 'e': appends(pop_mark()); break;
        case 'q': put(u8()); break;
        case 'r': put(le(4)); break;
        case 'h': get(u8()); break;
        case 'j': get(le(4)); break;
        case '.': doc_.root = pop(); return;
        default: fail(std::string("unsupported pickle opcode ") + opcode_name(op) + " (0x" + hex(op) + ")");
      }
    }
  }

 private:
  // Charges `bytes` of allocation to the pickle's budget.
  void charge(size_t bytes) {
    used_ += bytes;
    if (used_ > budget_)
      fail("the pickle needs more than " + std::to_string(budget_ >> 20) + " MiB of memory to read (" +
           std::to_string(kBytesPerPickleByte) + " bytes per byte of its " + std::to_string(n_) +
           "): not a torch state dict");
  }
  Value* make(Kind k) {
    charge(sizeof(Value));
    return doc_.make(k);
  }
  // None, True, False and () are immutable: one value each per document, however many opcodes.
  const Value* shared(Kind k, bool b = false) {
    const Value*& slot = k == Kind::none ? none_ : k == Kind::tuple ? empty_tuple_ : b ? true_ : false_;
    if (!slot) {
      Value* v = make(k);
      v->b = b;
      slot = v;
    }
    return slot;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(where_ + ": " + what + " at byte " + std::to_string(op_pos_));
  }
  static std::string hex(uint8_t v) {
    const char* d = "0123456789abcdef";
    return {d[v >> 4], d[v & 15]};
  }

  uint8_t u8() {
    if (pos_ >= n_) fail("truncated pickle (no STOP)");
    return p_[pos_++];
  }
  uint64_t le(int bytes) {
    if (n_ - pos_ < static_cast<size_t>(bytes)) fail("truncated pickle (no STOP)");
    uint64_t v = 0;
    for (int k = 0; k < bytes; ++k) v |= static_cast<uint64_t>(p_[pos_ + k]) << (8 * k);
    pos_ += bytes;
    return v;
  }

  void push(const Value* v) {
    charge(sizeof(v));
    stack_.push_back(v);
  }
  const Value* pop() {
    if (stack_.size() <= floor()) fail("pickle stack underflow");
    const Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  // Values below the innermost mark belong to an enclosing construct.
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  size_t pop_mark() {
    if (marks_.empty()) fail("pickle MARK missing");
    size_t m = marks_.back();
    marks_.pop_back();
    return m;
  }

  // torch.save writes protocol 2; 3 adds only bytes opcodes (refused below). 4+ frame the stream.
  void proto() {
    uint8_t v = u8();
    if (v < 2 || v > 3) fail("pickle protocol " + std::to_string(v) + " is not supported (expected 2)");
  }
  void push_int(int64_t i) {
    Value* v = make(Kind::integer);
    v->i = i;
    push(v);
  }
  void long1() {
    size_t len = u8();
    if (len > 8) fail("integer of " + std::to_string(len) + " bytes does not fit in 64 bits");
    uint64_t v = le(static_cast<int>(len));
    if (len > 0 && len < 8 && (v >> (8 * len - 1)) & 1) v |= ~uint64_t{0} << (8 * len);  // sign-extend
    push_int(static_cast<int64_t>(v));
  }
  void binfloat() {
    uint64_t bits = 0;
    for (int k = 0; k < 8; ++k) bits = (bits << 8) | u8();  // big-endian
    Value* v = make(Kind::floating);
    std::memcpy(&v->f, &bits, 8);
    push(v);
  }
  void push_string(uint64_t len) {
    if (len > n_ - pos_) fail("string of " + std::to_string(len) + " bytes runs past the end of the pickle");
    charge(len);
    Value* v = make(Kind::string);
    v->s.assign(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    push(v);
  }
  std::string line() {
    size_t start = pos_;
    while (pos_ < n_ && p_[pos_] != '\n') {
      if (pos_ - start > 256) fail("GLOBAL name too long");
      ++pos_;
    }
    if (pos_ >= n_) fail("truncated pickle (no STOP)");
    std::string s(reinterpret_cast<const char*>(p_ + start), pos_ - start);
    ++pos_;
    return s;
  }
  void global() {
    std::string module = line();
    std::string name = line();
    std::string full = module + "." + name;
    if (!allowed_globals().count(full)) fail("forbidden pickle global '" + full + "'");
    Value* v = make(Kind::global);
    v->s = full;
    push(v);
  }
  void push_tuple(size_t begin) {
    if (begin < floor() || begin > stack_.size()) fail("pickle stack underflow");
    charge((stack_.size() - begin) * sizeof(const Value*));
    Value* t = make(Kind::tuple);
    t->items.assign(stack_.begin() + static_cast<ptrdiff_t>(begin), stack_.end());
    stack_.resize(begin);
    push(t);
  }

  static bool is_int(const Value* v) { return v->kind == Kind::integer; }

  // ('storage', torch.<T>Storage, key, location, numel) -> a storage reference
  void persistent_id() {
    const Value* pid = pop();
    if (pid->kind != Kind::tuple || pid->items.size() != 5 || pid->items[0]->kind != Kind::string ||
        pid->items[0]->s != "storage")
      fail("persistent id is not a ('storage', type, key, location, numel) tuple");
    const auto& it = pid->items;
    Value* st = make(Kind::storage);
    if (it[1]->kind != Kind::global || !storage_type_of(it[1]->s, &st->storage_type))
      fail("persistent id names no storage type");
    if (it[2]->kind != Kind::string || it[3]->kind != Kind::string || !is_int(it[4]) || it[4]->i < 0)
      fail("persistent id has a malformed key, location or element count");
    st->s = it[2]->s;
    st->storage_numel = it[4]->i;
    push(st);
  }

  std::vector<int64_t> int_tuple(const Value* v, const char* what) {
    if (v->kind != Kind::tuple)
      fail(std::string("tensor ") + what + " is a " + kind_name(v->kind) + ", expected a tuple");
    if (v->items.size() > 64) fail(std::string("tensor ") + what + " has more than 64 dimensions");
    std::vector<int64_t> out;
    for (const Value* x : v->items) {
      if (!is_int(x)) fail(std::string("tensor ") + what + " holds a non-integer");
      out.push_back(x->i);
    }
    return out;
  }

  void reduce() {
    const Value* args = pop();
    const Value* fn = pop();
    if (fn->kind != Kind::global) fail(std::string("REDUCE on a ") + kind_name(fn->kind) + ", expected a global");
    if (args->kind != Kind::tuple) fail("REDUCE arguments are not a tuple");
    const auto& a = args->items;
    if (fn->s == "collections.OrderedDict") {
      if (!a.empty()) fail("collections.OrderedDict called with arguments");
      push(make(Kind::dict));
    } else if (fn->s == "torch._utils._rebuild_tensor_v2") {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (a.size() != 6 && a.size() != 7) fail("_rebuild_tensor_v2 takes 6 or 7 arguments");
      if (a[0]->kind != Kind::storage) fail("_rebuild_tensor_v2: first argument is not a storage");
      if (!is_int(a[1])) fail("_rebuild_tensor_v2: storage offset is not an integer");
      Value* t = make(Kind::tensor);
      t->storage = a[0];
      t->offset = a[1]->i;
      t->size = int_tuple(a[2], "size");
      t->stride = int_tuple(a[3], "stride");
      if (t->size.size() != t->stride.size()) fail("_rebuild_tensor_v2: size and stride differ in length");
      push(t);
    } else if (fn->s == "torch._utils._rebuild_parameter") {
      // (data, requires_grad, backward_hooks): a Parameter is its tensor for us
      if (a.size() != 3 || a[0]->kind != Kind::tensor) fail("_rebuild_parameter: expected (tensor, bool, hooks)");
      push(a[0]);
    } else {
      fail("global '" + fn->s + "' cannot be called");
    }
  }

  // BUILD sets attributes: torch uses it for a state dict's `_metadata`, which we do not need.
  void build() {
    pop();
    const Value* obj = pop();
    if (obj->kind != Kind::dict && obj->kind != Kind::tensor) fail(std::string("BUILD on a ") + kind_name(obj->kind));
    push(obj);
  }

  // Appends rather than `"s" + str`, which trips a GCC 12 -Wrestrict false positive.
  std::string key_identity(const Value* k) {
    std::string id;
    switch (k->kind) {
      case Kind::string:
        id = "s";
        id += k->s;
        return id;
      case Kind::integer:
        id = "i";
        id += std::to_string(k->i);
        return id;
      case Kind::boolean: return k->b ? "i1" : "i0";  // Python: True == 1
      case Kind::none: return "n";
      default: fail(std::string("unsupported dict key of type ") + kind_name(k->kind));
    }
  }

  void setitems(size_t begin) {
    if (begin < floor() + 1 || begin > stack_.size() || (stack_.size() - begin) % 2 != 0)
      fail("pickle stack underflow");
    Value* d = const_cast<Value*>(stack_[begin - 1]);
    if (d->kind != Kind::dict) fail(std::string("SETITEM on a ") + kind_name(d->kind));
    charge((stack_.size() - begin) / 2 * (sizeof(std::pair<const Value*, const Value*>) + 64));
    for (size_t k = begin; k < stack_.size(); k += 2) {
      auto [it, fresh] = d->index.emplace(key_identity(stack_[k]), d->entries.size());
      if (fresh)
        d->entries.emplace_back(stack_[k], stack_[k + 1]);
      else
        d->entries[it->second].second = stack_[k + 1];
    }
    stack_.resize(begin);
  }

  void appends(size_t begin) {
    if (begin < floor() + 1 || begin > stack_.size()) fail("pickle stack underflow");
    Value* l = const_cast<Value*>(stack_[begin - 1]);
    if (l->kind != Kind::list) fail(std::string("APPEND on a ") + kind_name(l->kind));
    charge((stack_.size() - begin) * sizeof(const Value*));
    l->items.insert(l->items.end(), stack_.begin() + static_cast<ptrdiff_t>(begin), stack_.end());
    stack_.resize(begin);
  }

  void put(uint64_t idx) {
    if (stack_.size() <= floor()) fail("pickle stack underflow");
    charge(64);  // an unordered_map node
    memo_[idx] = stack_.back();
  }
  void get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) fail("pickle memo entry " + std::to_string(idx) + " is missing");
    push(it->second);
  }

  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0, op_pos_ = 0;
  const std::string& where_;
  Document& doc_;
  std::vector<const Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, const Value*> memo_;
  size_t budget_, used_ = 0;
  const Value *none_ = nullptr, *empty_tuple_ = nullptr, *true_ = nullptr, *false_ = nullptr;
};

}  // namespace

const Value* dict_get(const Value* dict, const std::string& key) {
  if (!dict || dict->kind != Kind::dict) return nullptr;
  std::string id = "s";
  id += key;
  auto it = dict->index.find(id);
  return it == dict->index.end() ? nullptr : dict->entries[it->second].second;
}

void parse(const uint8_t* data, size_t size, const std::string& where, Document& doc) {
  Reader(data, size, where, doc).run();
}

}  // namespace varcode::io::pickle
