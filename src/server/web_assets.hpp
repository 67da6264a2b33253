// The web page's files (src/server/web/), embedded in the binary at build time by
// cmake/embed_files.cmake: nothing to install or build to use the page.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace varcode::server {

struct WebAsset {
  const char* path;  // "/index.html", "/app.js", ...
  const unsigned char* data;
  size_t size;
};

const std::vector<WebAsset>& web_assets();

}  // namespace varcode::server
