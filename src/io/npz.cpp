#include "io/npz.hpp"

#include <zip.h>

#include <algorithm>
#include <cstring>
#include <exception>

#include "io/atomic_file.hpp"
#include "io/npy.hpp"
#include "varcode/error.hpp"

namespace varcode::io {

namespace {

// The state behind a libzip "function source": libzip pulls the member's bytes through
// ZIP_SOURCE_READ while zip_close() writes the archive, so only one item is buffered at a time.
struct StreamSource {
  std::string header;                // the .npy header
  int64_t items = 0, item_bytes = 0;
  const std::function<void(int64_t, uint8_t*)>* fill = nullptr;
  std::vector<uint8_t> item;         // [item_bytes]: the current item
  int64_t next_item = 0;             // the item `item` will hold after the next refill
  size_t item_pos = 0;               // bytes of `item` already handed out
  size_t header_pos = 0;
  std::exception_ptr failure;        // an exception from fill(), rethrown after zip_close
  zip_error_t error{};

  uint64_t total() const { return header.size() + static_cast<uint64_t>(items) * static_cast<uint64_t>(item_bytes); }

  zip_int64_t read(uint8_t* out, uint64_t n) {
    uint64_t done = 0;
    while (done < n) {
      if (header_pos < header.size()) {
        const size_t k = static_cast<size_t>(std::min<uint64_t>(n - done, header.size() - header_pos));
        std::memcpy(out + done, header.data() + header_pos, k);
        header_pos += k;
        done += k;
        continue;
      }
      if (item_pos == item.size()) {
        if (next_item == items) break;  // end of data
        item.resize(static_cast<size_t>(item_bytes));
        (*fill)(next_item++, item.data());
        item_pos = 0;
      }
      const size_t k = static_cast<size_t>(std::min<uint64_t>(n - done, item.size() - item_pos));
      std::memcpy(out + done, item.data() + item_pos, k);
      item_pos += k;
      done += k;
    }
    return static_cast<zip_int64_t>(done);
  }
};

zip_int64_t source_cb(void* ud, void* data, zip_uint64_t len, zip_source_cmd_t cmd) {
  auto* s = static_cast<StreamSource*>(ud);
  switch (cmd) {
    case ZIP_SOURCE_OPEN:
      // libzip may open the source more than once (e.g. to retry with ZIP64); start over each time.
      s->header_pos = 0;
      s->next_item = 0;
      s->item.clear();
      s->item_pos = 0;
      return 0;
    case ZIP_SOURCE_READ:
      try {
        return s->read(static_cast<uint8_t*>(data), len);
      } catch (...) {
        // Exceptions must not cross libzip's C frames: keep it, report a read error.
        s->failure = std::current_exception();
        zip_error_set(&s->error, ZIP_ER_READ, 0);
        return -1;
      }
    case ZIP_SOURCE_CLOSE:
      return 0;
    case ZIP_SOURCE_STAT: {
      // The size is known in advance, so libzip can choose ZIP64 records before writing.
      auto* st = static_cast<zip_stat_t*>(data);
      zip_stat_init(st);
      st->size = s->total();
      st->comp_size = s->total();
      st->comp_method = ZIP_CM_STORE;
      st->encryption_method = ZIP_EM_NONE;
      st->mtime = 315532800;  // 1980-01-01, zip's epoch: the same data gives the same bytes
      st->valid = ZIP_STAT_MTIME | ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD | ZIP_STAT_ENCRYPTION_METHOD;
      return sizeof(zip_stat_t);
    }
    case ZIP_SOURCE_ERROR:
      return zip_error_to_data(&s->error, data, len);
    case ZIP_SOURCE_FREE:
      return 0;
    case ZIP_SOURCE_SUPPORTS:
      return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT,
                                            ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, -1);
    default:
      zip_error_set(&s->error, ZIP_ER_OPNOTSUPP, 0);
      return -1;
  }
}

}  // namespace

void write_npz_u8_streamed(const std::string& path, const std::string& name, const std::vector<int64_t>& shape,
                           const std::function<void(int64_t, uint8_t*)>& fill) {
  if (shape.empty()) throw Error(path + ": an .npz array needs at least one dimension");
  int64_t item_bytes = 1;
  for (size_t i = 1; i < shape.size(); ++i) item_bytes *= shape[i];
  StreamSource src;
  src.header = npy_header("|u1", shape);
  src.items = shape[0];
  src.item_bytes = item_bytes;
  src.fill = &fill;
  zip_error_init(&src.error);
  write_atomically(path, [&](const std::string& tmp) {
    int err = 0;
    zip_t* za = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (!za) {
      zip_error_t ze;
      zip_error_init_with_code(&ze, err);
      std::string msg = zip_error_strerror(&ze);
      zip_error_fini(&ze);
      throw Error(path + ": cannot create the .npz: " + msg);
    }
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t* zs = zip_source_function_create(source_cb, &src, &ze);
    const std::string member = name + ".npy";
    zip_int64_t idx = zs ? zip_file_add(za, member.c_str(), zs, ZIP_FL_ENC_UTF_8) : -1;
    if (idx < 0) {
      if (zs) zip_source_free(zs);
      std::string msg = zip_strerror(za);
      zip_discard(za);
      zip_error_fini(&ze);
      throw Error(path + ": cannot add " + member + ": " + msg);
    }
    zip_error_fini(&ze);
    zip_set_file_compression(za, static_cast<zip_uint64_t>(idx), ZIP_CM_STORE, 0);
    if (zip_close(za) != 0) {
      std::string msg = zip_strerror(za);
      zip_discard(za);
      if (src.failure) std::rethrow_exception(src.failure);
      throw Error(path + ": writing the .npz failed: " + msg);
    }
    if (src.failure) std::rethrow_exception(src.failure);
  });
}

}  // namespace varcode::io
