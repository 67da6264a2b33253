// NumPy .npy: magic, version, a Python-literal header dict, then raw C-order data.
#include "io/npy.hpp"

#include <cstring>

#include "io/atomic_file.hpp"
#include "io/mapped_file.hpp"

namespace varcode::io {

namespace {

struct Header {
  std::string descr;
  bool fortran = false;
  Shape shape;
  bool has_descr = false, has_fortran = false, has_shape = false;
};

// Parses the header dict, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
class HeaderParser {
 public:
  HeaderParser(const std::string& s, const std::string& path) : s_(s), path_(path) {}

  Header parse() {
    Header h;
    expect('{');
    while (true) {
      skip();
      if (peek() == '}') break;
      std::string key = quoted();
      skip();
      expect(':');
      skip();
      if (key == "descr") {
        h.descr = quoted();
        h.has_descr = true;
      } else if (key == "fortran_order") {
        h.fortran = boolean();
        h.has_fortran = true;
      } else if (key == "shape") {
        h.shape = tuple();
        h.has_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip();
      if (peek() == ',') ++i_;
    }
    if (!h.has_descr || !h.has_fortran || !h.has_shape) fail("missing 'descr', 'fortran_order' or 'shape'");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw Error(path_ + ": bad .npy header: " + what); }
  char peek() const {
    if (i_ >= s_.size()) fail("unterminated dict");
    return s_[i_];
  }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n')) ++i_;
  }
  void expect(char c) {
    skip();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string quoted() {
    char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    size_t end = s_.find(q, i_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string v = s_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    return v;
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) return i_ += 4, true;
    if (s_.compare(i_, 5, "False") == 0) return i_ += 5, false;
    fail("expected True or False");
  }
  Shape tuple() {
    expect('(');
    Shape shape;
    while (true) {
      skip();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') fail("shape holds a non-integer");
      int64_t v = 0;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
        if (v > (INT64_MAX - 9) / 10) fail("dimension too large");
        v = v * 10 + (s_[i_++] - '0');
      }
      if (shape.size() == 64) fail("more than 64 dimensions");
      shape.push_back(v);
      skip();
      if (peek() == ',') ++i_;
    }
    ++i_;
    return shape;
  }

  const std::string& s_;
  const std::string& path_;
  size_t i_ = 0;
};

}  // namespace

Tensor read_npy(const std::string& path) {
  auto m = MappedFile::open(path);
  const uint8_t* p = m->data();
  const size_t n = m->size();
  if (n < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0) throw Error(path + ": not a .npy file (bad magic)");
  const uint8_t major = p[6];
  size_t hlen = 0, pre = 0;
  if (major == 1) {
    hlen = p[8] | (p[9] << 8);
    pre = 10;
  } else if (major == 2 || major == 3) {
    if (n < 12) throw Error(path + ": truncated .npy header");
    hlen = static_cast<size_t>(p[8]) | (static_cast<size_t>(p[9]) << 8) | (static_cast<size_t>(p[10]) << 16) |
           (static_cast<size_t>(p[11]) << 24);
    pre = 12;
  } else {
    throw Error(path + ": unsupported .npy version " + std::to_string(major));
  }
  if (hlen > n - pre)
    throw Error(path + ": .npy header length " + std::to_string(hlen) + " runs past the end of the file");
  const std::string text(reinterpret_cast<const char*>(p + pre), hlen);
  Header h = HeaderParser(text, path).parse();
  if (h.fortran) throw Error(path + ": Fortran-order .npy arrays are not supported (expected C order)");
  DType dt;
  size_t es;
  bool u8 = false;
  if (h.descr == "<f4")
    dt = DType::f32, es = 4;
  else if (h.descr == "<i8")
    dt = DType::i64, es = 8;
  else if (h.descr == "<f2")
    dt = DType::f16, es = 2;
  else if (h.descr == "|u1" || h.descr == "|b1")
    dt = DType::f32, es = 1, u8 = true;
  else
    throw Error(path + ": unsupported .npy dtype '" + h.descr + "' (expected <f4, <i8, <f2 or |u1)");
  int64_t numel;
  try {
    numel = shape_numel(h.shape);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  const size_t avail = n - pre - hlen;
  if (static_cast<uint64_t>(numel) > avail / es)
    throw Error(path + ": .npy data of shape " + shape_str(h.shape) + " needs " + std::to_string(numel) + " x " +
                std::to_string(es) + " bytes, the file holds " + std::to_string(avail));
  const uint8_t* data = p + pre + hlen;
  Tensor t = Tensor::empty(dt, h.shape);
  if (u8) {
    float* out = t.data<float>();
    for (int64_t i = 0; i < numel; ++i) out[i] = data[i];
  } else if (numel) {
    std::memcpy(t.raw(), data, t.nbytes());
  }
  return t;
}

std::string npy_header(const std::string& descr, const std::vector<int64_t>& shape) {
  std::string sh = "(";
  for (size_t i = 0; i < shape.size(); ++i) sh += (i ? ", " : "") + std::to_string(shape[i]);
  sh += shape.size() == 1 ? ",)" : ")";  // a Python 1-tuple
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + sh + ", }";
  // As numpy does: pad with spaces so that the data starts on a 64-byte boundary, end with '\n'.
  size_t total = 10 + dict.size() + 1;
  total = (total + 63) / 64 * 64;
  dict.append(total - 10 - dict.size() - 1, ' ');
  dict += '\n';
  if (dict.size() > 65535) throw Error(".npy header too long");
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(dict.size() & 0xff);
  bytes += static_cast<char>(dict.size() >> 8);
  bytes += dict;
  return bytes;
}

void write_npy(const std::string& path, const Tensor& t) {
  const char* descr;
  if (t.dtype() == DType::f32)
    descr = "<f4";
  else if (t.dtype() == DType::i64)
    descr = "<i8";
  else
    throw Error(path + ": write_npy supports f32 and i64 tensors, got " + dtype_name(t.dtype()));
  std::string bytes = npy_header(descr, std::vector<int64_t>(t.shape().begin(), t.shape().end()));
  if (t.nbytes()) bytes.append(static_cast<const char*>(t.raw()), t.nbytes());
  write_file_atomically(path, bytes.data(), bytes.size());
}

}  // namespace varcode::io
