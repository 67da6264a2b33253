// NumPy .npz output (a zip of .npy files), streamed: FID sampling packs 50,000 images into one
// array that should never have to sit in memory whole.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace varcode::io {

// Writes `path` (atomically) as a zip holding one stored (uncompressed) member `<name>.npy`: a
// uint8 ('|u1') C-order array of `shape`. The data is pulled item by item along axis 0:
// fill(i, dst) writes the prod(shape[1:]) bytes of item i into dst, for i = 0, 1, ... in order,
// each exactly once. ZIP64 records are used when the member exceeds 4 GiB, or `zip64_above`
// bytes (lower only in tests, to check the ZIP64 layout without writing 4 GiB).
void write_npz_u8_streamed(const std::string& path, const std::string& name, const std::vector<int64_t>& shape,
                           const std::function<void(int64_t item, uint8_t* dst)>& fill,
                           uint64_t zip64_above = 0xffffffffu);

}  // namespace varcode::io
