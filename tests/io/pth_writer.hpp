// A small torch.save look-alike for tests and fuzz seeds: hand-assembled protocol-2 pickles and
// zip archives written with libzip (stored entries, data 64-byte aligned as torch does).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace varcode::io::testing {

// Emits pickle opcodes; each call appends one construct.
class Pickler {
 public:
  Pickler& proto() { return raw("\x80\x02"); }
  Pickler& raw(const std::string& bytes) {
    out_ += bytes;
    return *this;
  }
  Pickler& op(char c) {
    out_ += c;
    return *this;
  }
  Pickler& global(const std::string& module, const std::string& name) {
    return op('c').raw(module + "\n" + name + "\n");
  }
  Pickler& str(const std::string& s);
  Pickler& integer(int64_t v);
  Pickler& mark() { return op('('); }
  Pickler& tuple() { return op('t'); }
  Pickler& ordered_dict() { return global("collections", "OrderedDict").op(')').op('R'); }
  Pickler& stop() { return op('.'); }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

struct TensorSpec {
  std::string name;
  std::string storage_type = "FloatStorage";  // torch.<this>
  std::string key;                            // data/<key>
  int64_t storage_numel = 0;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
  bool parameter = false;  // wrap in torch._utils._rebuild_parameter
};

// Pushes one rebuilt tensor exactly as torch.save writes it.
void push_tensor(Pickler& p, const TensorSpec& t);

// data.pkl of an OrderedDict of `tensors`, wrapped in plain dicts under `nest` (outermost first),
// each wrapper also holding an 'epoch' int, a 'lr' float and a small list, as training
// checkpoints do.
std::string state_dict_pickle(const std::vector<TensorSpec>& tensors, const std::vector<std::string>& nest = {});

struct ZipEntrySpec {
  std::string name;
  std::string data;
  bool compress = false;  // deflate instead of store
  int misalign = 0;       // stored data starts this many bytes past a 64-byte boundary
};

// A zip archive written by libzip; stored entries' data 64-byte aligned (plus `misalign`).
std::string build_zip(const std::vector<ZipEntrySpec>& entries);

struct Storage {
  std::string key;
  std::string bytes;
};

// A whole .pth: `<top>/data.pkl`, `<top>/data/<key>` per storage, `<top>/version`.
std::string build_pth(const std::string& pickle, const std::vector<Storage>& storages,
                      const std::string& top = "archive", bool compress = false, int misalign = 0);

// Little-endian bytes of a vector of floats / int64 / raw uint16.
std::string f32_bytes(const std::vector<float>& v);
std::string i64_bytes(const std::vector<int64_t>& v);
std::string u16_bytes(const std::vector<uint16_t>& v);
std::string f64_bytes(const std::vector<double>& v);

// A sparse file > 4 GiB holding a .pth whose tensor storage lies past offset 2^32, with ZIP64
// records written by hand (libzip only writes them when sizes demand it). The tensor is
// 'w' = f32 [4] {1, 2, 3, 4}.
void write_zip64_pth(const std::string& path);

}  // namespace varcode::io::testing
