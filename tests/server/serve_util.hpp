// `varcode serve` under test: the built binary started on a free loopback port, an HTTP client
// for it, and the counterparts its answers must equal (`varcode generate` / `varcode edit` files).
#pragma once
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli_util.hpp"
#include "shipped_models.hpp"

namespace varcode::test {

using json = nlohmann::json;
inline const std::string& kModelsDir = kShippedModels;

inline std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::string base64_decode(const std::string& in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = val(c);
    if (v < 0) continue;  // '=' padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// A running `varcode serve --port 0 <args>`; killed (if still running) when destroyed.
class ServeProcess {
 public:
  explicit ServeProcess(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe failed");
    err_path_ = tmp_.path("serve.stderr");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      const int err = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(err, STDERR_FILENO);
      close(out[0]);
      for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
      std::vector<std::string> all = {kCli, "serve", "--port", "0"};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (std::string& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(kCli.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    out_fd_ = out[0];
    // "varcode serve: listening on http://127.0.0.1:PORT ..." once the model is loaded.
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (line.find('\n') == std::string::npos) {
      pollfd p{out_fd_, POLLIN, 0};
      if (std::chrono::steady_clock::now() > deadline || poll(&p, 1, 1000) < 0)
        throw std::runtime_error("varcode serve did not start: " + stderr_text());
      if (!(p.revents & (POLLIN | POLLHUP))) continue;
      char buf[256];
      const ssize_t n = read(out_fd_, buf, sizeof buf);
      if (n <= 0) throw std::runtime_error("varcode serve exited at start: " + stderr_text());
      line.append(buf, static_cast<size_t>(n));
    }
    const size_t at = line.find("127.0.0.1:");
    if (at == std::string::npos) throw std::runtime_error("unexpected first line: " + line);
    port_ = std::stoi(line.substr(at + 10));
  }
  ~ServeProcess() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string stderr_text() const { return read_bytes(err_path_); }

  httplib::Client client(int timeout_s = 120) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(timeout_s, 0);
    c.set_write_timeout(timeout_s, 0);
    c.set_connection_timeout(10, 0);
    return c;
  }

  // Sends SIGTERM and waits (at most timeout_s) for the exit; returns the exit status, or -1 when
  // it did not exit in time or died by a signal.
  int terminate_and_wait(int timeout_s) {
    kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    for (;;) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      if (std::chrono::steady_clock::now() > deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

 private:
  TempDir tmp_;
  std::string err_path_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int port_ = 0;
  bool reaped_ = false;
};

// The i-th PNG `varcode generate --class CLASSES --per-class n --seed S <flags> --out-dir` writes.
inline std::vector<std::string> cli_generate_pngs(const std::string& classes, int n, uint64_t seed,
                                                  const std::string& flags, const TempDir& tmp) {
  const std::string dir =
      tmp.path("gen_" + std::to_string(seed) + "_" + std::to_string(std::hash<std::string>{}(classes + flags)));
  RunResult r = run_cli("generate --class " + classes + " --per-class " + std::to_string(n) + " --seed " +
                            std::to_string(seed) + " " + flags + " --out-dir '" + dir + "' --quiet",
                        tmp);
  if (r.exit_code != 0) throw std::runtime_error("varcode generate failed: " + r.err);
  std::vector<std::string> out;
  for (int i = 0;; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "/%06d.png", i);
    std::ifstream f(dir + name);
    if (!f) break;
    out.push_back(read_bytes(dir + name));
  }
  return out;
}

// The explicit flags of the built-in pair (the CLI needs them for --draft-steps).
inline std::string builtin_pair_flags(int draft_steps) {
  return "--vae '" + kModelsDir + "fashion_vae.pth' --drafter '" + kModelsDir + "fashion_drafter.pth' --refiner '" +
         kModelsDir + "fashion_refiner.pth' --draft-steps " + std::to_string(draft_steps);
}

// The images of an /v1/images/generations or /v1/edits answer, decoded.
inline std::vector<std::string> answer_pngs(const std::string& body) {
  std::vector<std::string> out;
  const json answer = json::parse(body);
  for (const json& d : answer.at("data")) out.push_back(base64_decode(d.at("b64_json").get<std::string>()));
  return out;
}

// The `param` of a JSON error answer ("" when absent).
inline std::string error_param(const std::string& body) {
  try {
    const json j = json::parse(body);
    return j.at("error").at("param").is_string() ? j["error"]["param"].get<std::string>() : "";
  } catch (const std::exception&) {
    return "<not a JSON error: " + body.substr(0, 200) + ">";
  }
}

}  // namespace varcode::test
