// Outputs checked before any work starts: a run of minutes must not end in "cannot write".
#pragma once
#include <string>
#include <vector>

namespace varcode::cli {

// `path` can be created: its directory exists and accepts a new file (probed with a temporary
// file, so read-only mounts and permissions are caught as they are), and it is not a directory.
// Error naming `flag` otherwise. An empty path is skipped.
void check_output_file(const std::string& path, const std::string& flag);
// `dir` exists and accepts new files, or can be made (it is not made here). Error naming `flag`
// otherwise.
void check_output_dir(const std::string& dir, const std::string& flag);
// Removes the temporaries (NAME.tmp.*) that a killed run left for the given file names in `dir`:
// the command is about to write those very names, so no live writer owns them.
void remove_stale_temporaries(const std::string& dir, const std::vector<std::string>& names);

}  // namespace varcode::cli
