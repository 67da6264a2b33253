#include "server/metrics.hpp"

#include <cstdio>
#include <sstream>

namespace varcode::server {

void RequestCounters::add(const std::string& route, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[{route, status}];
}

std::map<std::pair<std::string, int>, int64_t> RequestCounters::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

std::string route_label(const std::string& method, const std::string& path) {
  std::string route = "other";
  if (path == "/health" || path == "/metrics" || path == "/v1/models" || path == "/v1/images/generations" ||
      path == "/v1/edits" || path == "/v1/jobs") {
    route = path;
  } else if (path.rfind("/v1/jobs/", 0) == 0) {
    route = path.find("/images/") != std::string::npos ? "/v1/jobs/{id}/images/{i}.png" : "/v1/jobs/{id}";
  } else if (path == "/" || path == "/index.html" || path == "/app.js" || path == "/style.css") {
    route = "page";
  }
  return method + " " + route;
}

namespace {
std::string num(double x) {
  char b[40];
  std::snprintf(b, sizeof b, "%.9g", x);
  return b;
}
void header(std::ostringstream& o, const char* name, const char* type, const char* help) {
  o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}
}  // namespace

std::string render_metrics(const SchedulerStats& s, const RequestCounters& requests, bool draining) {
  std::ostringstream o;
  header(o, "varcode_queue_depth", "gauge", "Requests waiting for the engine.");
  o << "varcode_queue_depth " << s.queued_jobs << "\n";
  header(o, "varcode_queue_images", "gauge", "Images of the waiting requests not yet in a batch.");
  o << "varcode_queue_images " << s.queued_images << "\n";
  header(o, "varcode_running_images", "gauge", "Images in the engine's batch now.");
  o << "varcode_running_images " << s.running_images << "\n";
  header(o, "varcode_draining", "gauge", "1 once the server stops taking work (SIGTERM).");
  o << "varcode_draining " << (draining ? 1 : 0) << "\n";
  header(o, "varcode_images_total", "counter", "Images made.");
  o << "varcode_images_total " << s.images_total << "\n";
  header(o, "varcode_image_seconds", "summary",
         "Engine seconds per image: each batch's wall time shared among its images.");
  o << "varcode_image_seconds_sum " << num(s.image_seconds_sum) << "\nvarcode_image_seconds_count " << s.images_total
    << "\n";
  header(o, "varcode_batch_size", "histogram", "Images per engine batch.");
  for (size_t i = 0; i < kBatchBuckets.size(); ++i)
    o << "varcode_batch_size_bucket{le=\"" << kBatchBuckets[i] << "\"} " << s.batch_size_buckets[i] << "\n";
  o << "varcode_batch_size_bucket{le=\"+Inf\"} " << s.batches_total << "\n";
  o << "varcode_batch_size_sum " << s.batch_size_sum << "\nvarcode_batch_size_count " << s.batches_total << "\n";
  header(o, "varcode_batch_size_max", "gauge", "The largest engine batch so far.");
  o << "varcode_batch_size_max " << s.max_batch_seen << "\n";
  header(o, "varcode_jobs_failed_total", "counter", "Requests whose generation failed.");
  o << "varcode_jobs_failed_total " << s.failed_total << "\n";
  header(o, "varcode_jobs_cancelled_total", "counter", "Jobs cancelled before they finished.");
  o << "varcode_jobs_cancelled_total " << s.cancelled_total << "\n";
  header(o, "varcode_http_requests_total", "counter", "HTTP requests answered, by route and status.");
  for (const auto& [key, count] : requests.snapshot())
    o << "varcode_http_requests_total{route=\"" << key.first << "\",code=\"" << key.second << "\"} " << count << "\n";
  return o.str();
}

}  // namespace varcode::server
