// `varcode serve`: the HTTP API (OpenAI-shaped image generations, jobs, edits, models, health,
// Prometheus metrics) and the embedded web page, on cpp-httplib, over one Scheduler.
#pragma once
#include <memory>

#include "server/served_model.hpp"

namespace varcode::server {

class HttpServer {
 public:
  HttpServer(ServedModel model, ServerOptions opt);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket; returns the port (the one chosen when opt.port is 0). Error when
  // the address cannot be bound.
  int bind();
  // Answers requests until shutdown() has finished.
  void serve();
  // Graceful stop, from any thread: new work is refused (503), the work taken is finished and its
  // waiting clients answered, then the listener closes and serve() returns.
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace varcode::server
