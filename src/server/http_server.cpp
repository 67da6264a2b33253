#include "server/http_server.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include "server/metrics.hpp"
#include "server/params.hpp"
#include "server/scheduler.hpp"
#include "server/web_assets.hpp"
#include "varcode/error.hpp"

namespace varcode::server {

namespace {

using json = nlohmann::json;

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint32_t{static_cast<uint8_t>(in[i])} << 16) |
                       (uint32_t{static_cast<uint8_t>(in[i + 1])} << 8) | static_cast<uint8_t>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kB64[(v >> s) & 63]);
  }
  if (i < in.size()) {
    uint32_t v = uint32_t{static_cast<uint8_t>(in[i])} << 16;
    if (i + 1 < in.size()) v |= uint32_t{static_cast<uint8_t>(in[i + 1])} << 8;
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kB64[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// The OpenAI error shape; `param` names the field at fault.
void send_error(httplib::Response& res, int status, const std::string& message, const std::string& param = "",
                const char* type = "invalid_request_error") {
  json e = {
      {"message", message}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)}, {"code", nullptr}};
  res.status = status;
  res.set_content(json{{"error", e}}.dump(), "application/json");
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % std::max<size_t>(b.size(), 1)]);
  return diff == 0;
}

const char* mime_of(const std::string& path) {
  auto ends = [&](const char* s) {
    const std::string e(s);
    return path.size() >= e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

bool is_page_path(const std::string& path) {
  if (path == "/") return true;
  for (const WebAsset& a : web_assets())
    if (path == a.path) return true;
  return false;
}

// Debian's cpp-httplib is built with a listen backlog of 5: a burst of clients overflows it and
// their connections stall in SYN retries. Linux lets listen() be called again on a listening
// socket to enlarge the queue.
class Listener : public httplib::Server {
 public:
  void widen_backlog(int n) { ::listen(svr_sock_, n); }
};

}  // namespace

struct HttpServer::Impl {
  ServedModel model;
  ServerOptions opt;
  Scheduler scheduler;
  RequestCounters requests;
  Listener http;
  // Handlers waiting for the engine: shutdown answers them before it closes the listener.
  std::mutex waiting_mu;
  std::condition_variable waiting_cv;
  int waiting = 0;
  bool bound = false;
  std::atomic<bool> serving{false}, stopped{false};

  Impl(ServedModel m, ServerOptions o)
      : model(std::move(m)),
        opt(std::move(o)),
        scheduler(model.generator, SchedulerOptions{opt.max_batch, opt.max_queue, opt.batch_window_ms}) {}

  struct Waiting {
    Impl* s;
    explicit Waiting(Impl* i) : s(i) {
      std::lock_guard<std::mutex> lock(s->waiting_mu);
      ++s->waiting;
    }
    ~Waiting() {
      std::lock_guard<std::mutex> lock(s->waiting_mu);
      if (--s->waiting == 0) s->waiting_cv.notify_all();
    }
  };

  std::string class_name(int c) const {
    return c >= 0 && c < static_cast<int>(model.class_names.size()) ? model.class_names[static_cast<size_t>(c)]
                                                                    : std::to_string(c);
  }

  // Queues the work, or answers 503 (full: with Retry-After) and returns null.
  std::shared_ptr<Job> submit(WorkSpec w, bool listed, httplib::Response& res) {
    Scheduler::Refusal why = Scheduler::Refusal::none;
    auto job = scheduler.submit(std::move(w), listed, &why);
    if (job) return job;
    res.set_header("Retry-After", std::to_string(scheduler.retry_after_seconds()));
    if (why == Scheduler::Refusal::draining)
      send_error(res, 503, "the server is shutting down and takes no new work", "", "server_unavailable");
    else
      send_error(res, 503, "the queue is full (" + std::to_string(opt.max_queue) + " requests waiting); retry later",
                 "", "server_busy");
    return nullptr;
  }

  // The answer of a synchronous generation or edit once its job is over.
  void answer_images(const std::shared_ptr<Job>& job, httplib::Response& res) {
    scheduler.wait(job);
    const JobView v = scheduler.view(job);
    if (v.state != JobState::done) {
      send_error(res, 500, "generation failed: " + v.error, "", "server_error");
      return;
    }
    json data = json::array();
    for (size_t i = 0; i < v.n; ++i) {
      std::string png;
      scheduler.image(job, i, &png);
      data.push_back({{"b64_json", base64(png)},
                      {"seed", v.seed},
                      {"index", i},
                      {"class", v.classes[i]},
                      {"class_name", class_name(v.classes[i])}});
    }
    send_json(res, 200, {{"created", v.created_unix}, {"data", data}});
  }

  json job_json(const JobView& v) const {
    json images = json::array();
    for (size_t i = 0; i < v.image_ready.size(); ++i)
      if (v.image_ready[i]) images.push_back("/v1/jobs/" + v.id + "/images/" + std::to_string(i) + ".png");
    json classes = json::array();
    for (int c : v.classes) classes.push_back({{"class", c}, {"name", class_name(c)}});
    json j = {{"id", v.id},
              {"object", "job"},
              {"state", state_name(v.state)},
              {"created", v.created_unix},
              {"n", v.n},
              {"seed", v.seed},
              {"classes", classes},
              {"images_done", v.images_done},
              {"images", images},
              {"version", v.version},
              {"progress",
               {{"stage", v.stage.empty() ? json(nullptr) : json(v.stage)},
                {"scale", v.scale},
                {"num_scales", v.num_scales}}}};
    if (v.state == JobState::queued) j["queue_position"] = v.queue_position;
    if (!v.error.empty()) j["error"] = v.error;
    return j;
  }

  WorkSpec parse_json_generation(const httplib::Request& req) const {
    json body;
    try {
      body = json::parse(req.body);
    } catch (const json::exception& e) {
      throw BadRequest("body", std::string("body: malformed JSON: ") + e.what());
    }
    return parse_generation(body, model, opt);
  }

  WorkSpec parse_multipart_edit(const httplib::Request& req) const {
    if (!req.is_multipart_form_data())
      throw BadRequest("body", "body: expected multipart/form-data with an image part (and mask, box or outpaint)");
    EditUpload up;
    up.fields = json::object();
    for (const auto& [name, part] : req.files) {
      if (name == "image") {
        up.image_png = part.content;
        up.has_image = true;
      } else if (name == "mask") {
        up.mask_png = part.content;
        up.has_mask = true;
      } else {
        up.fields[name] = part.content;
      }
    }
    return parse_edit(up, model, opt);
  }

  json models_json() const {
    const Generator& g = model.generator;
    json files = json::object();
    for (const auto& [role, path] : model.files) files[role] = std::filesystem::path(path).filename().string();
    json classes = json::array();
    for (int c = 0; c < g.num_classes(); ++c) classes.push_back({{"id", c}, {"name", class_name(c)}});
    const SamplingOptions d = g.default_sampling();
    json m = {{"id", "varcode"},
              {"object", "model"},
              {"owned_by", "varcode"},
              {"kind", g.collaborative() ? "code" : "var"},
              {"files", files},
              {"classes", classes},
              {"num_classes", g.num_classes()},
              {"resolution", g.image_size()},
              {"schedule", g.patch_nums()},
              {"compute_dtype", dtype_name(g.compute_dtype())},
              {"defaults",
               {{"cfg", d.cfg},
                {"top_k", d.top_k},
                {"top_p", d.top_p},
                {"temperature", d.temperature},
                {"smooth", d.smooth}}},
              {"limits",
               {{"max_images_per_request", opt.max_images_per_request},
                {"max_batch", opt.max_batch},
                {"max_queue", opt.max_queue},
                {"max_body_bytes", opt.max_body_bytes}}}};
    if (g.collaborative())
      m["draft_steps"] = {{"default", g.draft_steps()}, {"min", 1}, {"max", g.num_scales() - 1}};
    else
      m["draft_steps"] = nullptr;
    return {{"object", "list"}, {"data", json::array({m})}};
  }

  std::shared_ptr<Job> job_or_404(const std::string& id, httplib::Response& res) {
    auto job = scheduler.find(id);
    if (!job)
      send_error(res, 404, "no job " + id + " (unknown, or finished more than 15 minutes ago)", "id", "not_found");
    return job;
  }

  void routes();
};

void HttpServer::Impl::routes() {
  // Bad input never reaches the engine: every handler turns BadRequest into a 400 naming the field.
  auto guarded = [this](auto handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      try {
        handler(req, res);
      } catch (const BadRequest& e) {
        send_error(res, 400, e.what(), e.field());
      }
    };
  };

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (opt.api_key.empty() || req.path == "/health" || (req.method == "GET" && is_page_path(req.path)))
      return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.rfind(prefix, 0) == 0 && constant_time_equal(auth.substr(prefix.size()), opt.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, 401, auth.empty() ? "missing Authorization: Bearer <api key>" : "wrong API key", "Authorization",
               "authentication_error");
    return httplib::Server::HandlerResponse::Handled;
  });
  // httplib's own errors (413 over the size limit, 404 no route, 400 unreadable request) get a
  // JSON body too.
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413)
      send_error(res, 413, "body: larger than the server's limit (--max-body-mb)", "body");
    else if (res.status == 404)
      send_error(res, 404, "no such endpoint: " + req.method + " " + req.path, "", "not_found");
    else
      send_error(res, res.status, "bad request", "");
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, 500, what, "", "server_error");
  });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    requests.add(route_label(req.method, req.path), res.status);
  });

  for (const WebAsset& a : web_assets()) {
    auto serve_asset = [&a](const httplib::Request&, httplib::Response& res) {
      res.set_content(reinterpret_cast<const char*>(a.data), a.size, mime_of(a.path));
    };
    http.Get(a.path, serve_asset);
    if (std::string(a.path) == "/index.html") http.Get("/", serve_asset);
  }

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const SchedulerStats s = scheduler.stats();
    const bool draining = scheduler.draining();
    send_json(res, draining ? 503 : 200,
              {{"status", draining ? "draining" : "ok"},
               {"queue_depth", s.queued_jobs},
               {"running_images", s.running_images}});
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(render_metrics(scheduler.stats(), requests, scheduler.draining()),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  http.Get("/v1/models",
           [this](const httplib::Request&, httplib::Response& res) { send_json(res, 200, models_json()); });

  http.Post("/v1/images/generations", guarded([this](const httplib::Request& req, httplib::Response& res) {
              Waiting w(this);
              auto job = submit(parse_json_generation(req), false, res);
              if (job) answer_images(job, res);
            }));
  http.Post("/v1/edits", guarded([this](const httplib::Request& req, httplib::Response& res) {
              Waiting w(this);
              auto job = submit(parse_multipart_edit(req), false, res);
              if (job) answer_images(job, res);
            }));
  http.Post("/v1/jobs", guarded([this](const httplib::Request& req, httplib::Response& res) {
              WorkSpec w = req.is_multipart_form_data() ? parse_multipart_edit(req) : parse_json_generation(req);
              auto job = submit(std::move(w), true, res);
              if (!job) return;
              json j = job_json(scheduler.view(job));
              j["url"] = "/v1/jobs/" + j["id"].get<std::string>();
              res.set_header("Location", j["url"].get<std::string>());
              send_json(res, 202, j);
            }));
  // ?after=VERSION: a long poll, answered once the job has changed past that version (at most 10 s).
  http.Get(R"(/v1/jobs/([A-Za-z0-9_]+))", guarded([this](const httplib::Request& req, httplib::Response& res) {
             auto job = job_or_404(req.matches[1], res);
             if (!job) return;
             if (!req.has_param("after")) {
               send_json(res, 200, job_json(scheduler.view(job)));
               return;
             }
             const std::string after = req.get_param_value("after");
             if (after.empty() || after.size() > 19 ||
                 !std::all_of(after.begin(), after.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
               throw BadRequest("after",
                                "after: expected a job version (a non-negative integer), got \"" + after + "\"");
             send_json(res, 200, job_json(scheduler.view_after(job, std::stoull(after), std::chrono::seconds(10))));
           }));
  http.Get(R"(/v1/jobs/([A-Za-z0-9_]+)/images/(\d{1,6})\.png)", [this](const httplib::Request& req,
                                                                       httplib::Response& res) {
    auto job = job_or_404(req.matches[1], res);
    if (!job) return;
    const size_t i = std::stoul(req.matches[2]);
    const JobView v = scheduler.view(job);
    if (i >= v.n) {
      send_error(res, 404, "job " + v.id + " has " + std::to_string(v.n) + " image(s)", "i", "not_found");
      return;
    }
    std::string png;
    if (!scheduler.image(job, i, &png)) {
      send_error(res, 409,
                 "image " + std::to_string(i) + " of job " + v.id + " is not made (state " + state_name(v.state) + ")",
                 "i", "not_ready");
      return;
    }
    res.set_header("Content-Disposition",
                   "inline; filename=\"varcode_" + std::to_string(v.seed) + "_" + std::to_string(i) + ".png\"");
    res.set_content(png, "image/png");
  });
  http.Delete(R"(/v1/jobs/([A-Za-z0-9_]+))", [this](const httplib::Request& req, httplib::Response& res) {
    auto job = job_or_404(req.matches[1], res);
    if (!job) return;
    if (!scheduler.cancel(job)) {
      const JobView v = scheduler.view(job);
      send_error(res, 409, "job " + v.id + " is already " + state_name(v.state), "id", "conflict");
      return;
    }
    send_json(res, 200, job_json(scheduler.view(job)));
  });
}

HttpServer::HttpServer(ServedModel model, ServerOptions opt)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(opt))) {
  Impl& s = *impl_;
  const int threads = s.opt.http_threads > 0 ? s.opt.http_threads : s.opt.max_queue + 32;
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.http.set_payload_max_length(s.opt.max_body_bytes);
  s.http.set_keep_alive_timeout(3);
  s.http.set_read_timeout(30);
  s.http.set_write_timeout(30);
  s.routes();
}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  Impl& s = *impl_;
  int port = s.opt.port;
  if (port == 0) {
    port = s.http.bind_to_any_port(s.opt.host);
    if (port < 0) throw Error("--host " + s.opt.host + ": cannot listen there");
  } else if (!s.http.bind_to_port(s.opt.host, port)) {
    throw Error("--host " + s.opt.host + " --port " + std::to_string(port) +
                ": cannot listen there (in use, or not an address of this machine)");
  }
  s.http.widen_backlog(SOMAXCONN);
  s.bound = true;
  return port;
}

void HttpServer::serve() {
  if (!impl_->bound) bind();
  impl_->serving = true;
  if (impl_->stopped) return;
  impl_->http.listen_after_bind();
}

void HttpServer::shutdown() {
  Impl& s = *impl_;
  s.scheduler.drain();
  {
    std::unique_lock<std::mutex> lock(s.waiting_mu);
    s.waiting_cv.wait(lock, [&] { return s.waiting == 0; });
  }
  s.stopped = true;
  // serve() may be between its check and listening: stop() only acts on a running listener.
  while (s.serving && !s.http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  s.http.stop();
}

}  // namespace varcode::server
