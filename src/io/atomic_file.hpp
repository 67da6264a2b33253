// Writes that never leave a half-written file behind: write to a temporary beside the target,
// flush, then rename into place.
#pragma once
#include <functional>
#include <string>

namespace varcode::io {

// Temporaries are named PATH.tmp.<pid>.<unique> (mkstemp): unique between the threads of one
// process and between processes.
// Calls `write(tmp_path)` (tmp_path exists, empty) to produce the file, then renames it onto `path`. On any exception
// the temporary file is removed and the exception rethrown.
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp_path)>& write);
// Convenience: whole content from memory.
void write_file_atomically(const std::string& path, const void* data, size_t size);

}  // namespace varcode::io
