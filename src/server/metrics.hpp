// GET /metrics: Prometheus text exposition (version 0.0.4) of the queue, the engine's work and
// the HTTP requests answered.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "server/scheduler.hpp"

namespace varcode::server {

// Requests answered, by route (a fixed set of labels, never the raw path) and status code.
class RequestCounters {
 public:
  void add(const std::string& route, int status);
  std::map<std::pair<std::string, int>, int64_t> snapshot() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> counts_;
};

// The route label of a request path: "/v1/jobs/{id}" and the like.
std::string route_label(const std::string& method, const std::string& path);

std::string render_metrics(const SchedulerStats& s, const RequestCounters& requests, bool draining);

}  // namespace varcode::server
