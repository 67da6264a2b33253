#include "io/zip_reader.hpp"

#include <zip.h>

#include <cstring>

#include "varcode/error.hpp"

namespace varcode::io {

// A seekable libzip source over the buffer that remembers where its last read started: after
// libzip has read the first bytes of a stored entry, that position is the entry's data offset
// (libzip exposes neither the local header offset nor the data offset).
struct ZipReader::Source {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
  uint64_t pos = 0;
  uint64_t last_read_pos = 0;
  uint64_t last_read_len = 0;
  zip_error_t error;

  static zip_int64_t callback(void* user, void* buf, zip_uint64_t len, zip_source_cmd_t cmd) {
    auto* s = static_cast<Source*>(user);
    switch (cmd) {
      case ZIP_SOURCE_OPEN: s->pos = 0; return 0;
      case ZIP_SOURCE_READ: {
        uint64_t n = s->pos < s->size ? std::min<uint64_t>(len, s->size - s->pos) : 0;
        if (n) std::memcpy(buf, s->data + s->pos, n);
        s->last_read_pos = s->pos;
        s->last_read_len = n;
        s->pos += n;
        return static_cast<zip_int64_t>(n);
      }
      case ZIP_SOURCE_CLOSE: return 0;
      case ZIP_SOURCE_STAT: {
        if (len < sizeof(zip_stat_t)) {
          zip_error_set(&s->error, ZIP_ER_INVAL, 0);
          return -1;
        }
        auto* st = static_cast<zip_stat_t*>(buf);
        zip_stat_init(st);
        st->size = s->size;
        st->comp_size = s->size;
        st->comp_method = ZIP_CM_STORE;
        st->encryption_method = ZIP_EM_NONE;
        st->valid = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD | ZIP_STAT_ENCRYPTION_METHOD;
        return sizeof(zip_stat_t);
      }
      case ZIP_SOURCE_ERROR: return zip_error_to_data(&s->error, buf, len);
      case ZIP_SOURCE_FREE: return 0;  // owned by ZipReader
      case ZIP_SOURCE_SEEK: {
        zip_int64_t off = zip_source_seek_compute_offset(s->pos, s->size, buf, len, &s->error);
        if (off < 0) return -1;
        s->pos = static_cast<uint64_t>(off);
        return 0;
      }
      case ZIP_SOURCE_TELL: return static_cast<zip_int64_t>(s->pos);
      case ZIP_SOURCE_SUPPORTS:
        return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT,
                                              ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, ZIP_SOURCE_SEEK, ZIP_SOURCE_TELL,
                                              ZIP_SOURCE_SUPPORTS, -1);
      default: zip_error_set(&s->error, ZIP_ER_OPNOTSUPP, 0); return -1;
    }
  }
};

namespace {

struct FileCloser {
  zip_file_t* f;
  ~FileCloser() {
    if (f) zip_fclose(f);
  }
};

}  // namespace

ZipReader::ZipReader(const uint8_t* data, size_t size, std::string name)
    : src_(std::make_unique<Source>()), name_(std::move(name)) {
  src_->data = data;
  src_->size = size;
  zip_error_init(&src_->error);
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t* zs = zip_source_function_create(&Source::callback, src_.get(), &err);
  if (!zs) {
    std::string msg = zip_error_strerror(&err);
    zip_error_fini(&err);
    throw Error(name_ + ": cannot read as zip: " + msg);
  }
  archive_ = zip_open_from_source(zs, ZIP_RDONLY, &err);
  if (!archive_) {
    std::string msg = zip_error_strerror(&err);
    zip_error_fini(&err);
    zip_source_free(zs);
    throw Error(name_ + ": not a valid zip archive (" + msg + ")");
  }
  zip_error_fini(&err);
}

ZipReader::~ZipReader() {
  if (archive_) zip_discard(archive_);
  zip_error_fini(&src_->error);
}

uint64_t ZipReader::num_entries() const {
  zip_int64_t n = zip_get_num_entries(archive_, 0);
  return n < 0 ? 0 : static_cast<uint64_t>(n);
}

ZipEntryInfo ZipReader::stat(uint64_t index) const {
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(archive_, index, 0, &st) != 0)
    throw Error(name_ + ": zip entry " + std::to_string(index) + ": " + zip_strerror(archive_));
  const zip_uint64_t need = ZIP_STAT_NAME | ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
  if ((st.valid & need) != need || !st.name)
    throw Error(name_ + ": zip entry " + std::to_string(index) + " lacks name, size or method");
  ZipEntryInfo e;
  e.name = st.name;
  e.size = st.size;
  e.comp_size = st.comp_size;
  bool encrypted = (st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE;
  e.stored = st.comp_method == ZIP_CM_STORE && !encrypted;
  return e;
}

std::optional<uint64_t> ZipReader::locate(const std::string& entry_name) const {
  zip_int64_t i = zip_name_locate(archive_, entry_name.c_str(), 0);
  if (i < 0) return std::nullopt;
  return static_cast<uint64_t>(i);
}

std::optional<uint64_t> ZipReader::stored_data_offset(uint64_t index) const {
  ZipEntryInfo e = stat(index);
  if (!e.stored || e.size != e.comp_size || e.size == 0) return std::nullopt;
  zip_file_t* f = zip_fopen_index(archive_, index, 0);
  if (!f) return std::nullopt;
  FileCloser closer{f};
  // Enough bytes to make an accidental match implausible, few enough to stay cheap.
  uint8_t probe[64];
  const uint64_t want = std::min<uint64_t>(sizeof probe, e.size);
  src_->last_read_len = 0;
  zip_int64_t got = zip_fread(f, probe, want);
  if (got != static_cast<zip_int64_t>(want) || src_->last_read_len < want) return std::nullopt;
  const uint64_t off = src_->last_read_pos;
  if (off > src_->size || e.size > src_->size - off) return std::nullopt;
  if (std::memcmp(probe, src_->data + off, want) != 0) return std::nullopt;
  return off;
}

void ZipReader::read(uint64_t index, void* out) const {
  ZipEntryInfo e = stat(index);
  zip_file_t* f = zip_fopen_index(archive_, index, 0);
  if (!f) throw Error(name_ + ": cannot open zip entry '" + e.name + "': " + zip_strerror(archive_));
  FileCloser closer{f};
  uint64_t done = 0;
  auto* dst = static_cast<uint8_t*>(out);
  while (done < e.size) {
    zip_int64_t got = zip_fread(f, dst + done, e.size - done);
    if (got < 0) throw Error(name_ + ": cannot read zip entry '" + e.name + "': " + zip_file_strerror(f));
    if (got == 0) break;
    done += static_cast<uint64_t>(got);
  }
  if (done != e.size)
    throw Error(name_ + ": zip entry '" + e.name + "' is truncated (" + std::to_string(done) + " of " +
                std::to_string(e.size) + " bytes)");
}

}  // namespace varcode::io
