// What `varcode serve` serves: the opened pipeline and what the HTTP layer tells about it, plus the
// server's limits. Filled by the CLI (src/cli/cmd_serve.cpp), which knows the model flags.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "varcode/generator.hpp"

namespace varcode::server {

struct ServedModel {
  Generator generator;
  std::vector<std::string> class_names;                    // empty when the model has none
  std::vector<std::pair<std::string, std::string>> files;  // (role, path): ("vae", ...), ("drafter", ...)
  // A prompt as `varcode generate --class` reads it ("sneaker", "7", "0-3"); Error for anything
  // else, its message naming `field`.
  std::function<std::vector<int>(const std::string& text, const std::string& field)> parse_classes;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;           // 0 = any free port (printed)
  int max_batch = 8;         // images per engine batch
  int max_queue = 64;        // requests waiting for the engine; more answer 503
  int batch_window_ms = 20;  // how long the oldest waiting request waits for company
  std::string api_key;       // non-empty: Authorization: Bearer <key> everywhere but /health and the page
  size_t max_body_bytes = size_t{16} << 20;
  int max_images_per_request = 16;
  int http_threads = 0;  // 0 = max_queue + 32
};

}  // namespace varcode::server
