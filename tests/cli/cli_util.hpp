// Running the built varcode binary from tests: a temporary folder, the exit code and stderr, and
// the check every bad-input test makes (non-zero exit, a clear message, nothing left behind).
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace varcode::test {

namespace fs = std::filesystem;
const std::string kCli = VARCODE_CLI;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "varcode_cli_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  std::string path(const std::string& name) const { return root_ + "/" + name; }
  // Everything in the folder (to check that a failed command left nothing behind).
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(root_)) out.push_back(e.path().filename().string());
    return out;
  }

 private:
  std::string root_;
};

struct RunResult {
  int exit_code = -1;
  std::string err;
  std::string out;
};

// Runs `varcode <args>`, capturing stdout and stderr.
inline RunResult run_cli(const std::string& args, const TempDir& tmp) {
  const std::string err_file = tmp.path(".stderr");
  const std::string out_file = tmp.path(".stdout");
  const std::string cmd = "'" + kCli + "' " + args + " >'" + out_file + "' 2>'" + err_file + "'";
  RunResult r;
  const int status = std::system(cmd.c_str());
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream f(err_file);
  std::stringstream ss;
  ss << f.rdbuf();
  r.err = ss.str();
  fs::remove(err_file);
  std::ifstream fo(out_file);
  std::stringstream so;
  so << fo.rdbuf();
  r.out = so.str();
  fs::remove(out_file);
  return r;
}

// The fixtures' tiny models (../shared/fixtures/tiny), and their CoDe pair at N = 4 as flags.
inline const std::string kTiny = std::string(VARCODE_FIXTURES) + "/tiny";
inline const std::string kPair = "--vae " + kTiny + "/vae.pth --drafter " + kTiny + "/drafter.pth --refiner " + kTiny +
                                 "/refiner.pth --draft-steps 4";

// stdout of a command that must succeed.
inline std::string run_ok(const std::string& args, const TempDir& tmp) {
  auto r = run_cli(args, tmp);
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
  return r.out;
}

inline void expect_failure(const RunResult& r, const std::string& message_part, const TempDir& tmp,
                           const std::vector<std::string>& allowed_files = {}) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("varcode: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(message_part), std::string::npos) << "stderr: " << r.err << "\nexpected: " << message_part;
  for (const auto& e : tmp.entries())
    EXPECT_NE(std::find(allowed_files.begin(), allowed_files.end(), e), allowed_files.end()) << "left behind: " << e;
}

}  // namespace varcode::test
