// varcode serve: the HTTP server (src/server) over one opened pipeline. SIGTERM / SIGINT stop it
// gracefully: no new work, the work taken is finished and answered, exit status 0.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <memory>
#include <thread>

#include "class_list.hpp"
#include "commands.hpp"
#include "model_flags.hpp"
#include "server/http_server.hpp"

namespace varcode::cli {

namespace {
struct ServeFlags {
  PipelineFlags pipe;
  server::ServerOptions opt;
  int max_body_mb = 16;
};
}  // namespace

void register_serve(CLI::App& app) {
  auto f = std::make_shared<ServeFlags>();
  auto* cmd = app.add_subcommand("serve", "HTTP server: image generations, jobs, edits and a web page");
  add_pipeline_flags(cmd, f->pipe);
  cmd->add_option("--host", f->opt.host, "Address to listen on (default 127.0.0.1: this machine only)");
  cmd->add_option("--port", f->opt.port, "Port (default 8080; 0 = any free port, printed)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--max-batch", f->opt.max_batch, "Images per engine batch, merged across requests (default 8)")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--max-queue", f->opt.max_queue, "Requests waiting for the engine; more get 503 (default 64)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--batch-window", f->opt.batch_window_ms,
                  "Milliseconds the oldest waiting request waits for company (default 20)")
      ->check(CLI::Range(0, 60000));
  cmd->add_option("--api-key", f->opt.api_key,
                  "Require Authorization: Bearer KEY everywhere but /health and the page (default: "
                  "$VARCODE_API_KEY when set)");
  cmd->add_option("--max-body-mb", f->max_body_mb, "Largest request body in MiB; larger get 413 (default 16)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--max-images", f->opt.max_images_per_request, "Images per request at most (default 16)")
      ->check(CLI::Range(1, 1024));
  cmd->callback([f] {
    if (f->opt.api_key.empty())
      if (const char* k = std::getenv("VARCODE_API_KEY"); k && *k) f->opt.api_key = k;
    f->opt.max_body_bytes = static_cast<size_t>(f->max_body_mb) << 20;
    // Signals go to one thread that waits for them; every other thread (the engine's included)
    // inherits the blocked mask.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    signal(SIGPIPE, SIG_IGN);  // a client gone mid-answer is a failed write, not the end of the server

    server::ServedModel model;
    model.generator = open_pipeline(f->pipe);
    const int num_classes = model.generator.num_classes();
    model.class_names = class_names(f->pipe, num_classes);
    if (!f->pipe.model.empty()) {
      model.files = {{"vae", f->pipe.vae}, {"model", f->pipe.model}};
    } else {
      model.files = {{"vae", f->pipe.vae}, {"drafter", f->pipe.drafter}, {"refiner", f->pipe.refiner}};
    }
    const std::vector<std::string> names = model.class_names;
    model.parse_classes = [num_classes, names](const std::string& text, const std::string& field) {
      return parse_classes(text, field, num_classes, names);
    };
    server::HttpServer http(std::move(model), f->opt);
    const int port = http.bind();
    std::printf("varcode serve: listening on http://%s:%d (max batch %d, batch window %d ms, max queue %d%s)\n",
                f->opt.host.c_str(), port, f->opt.max_batch, f->opt.batch_window_ms, f->opt.max_queue,
                f->opt.api_key.empty() ? "" : ", API key required");
    std::fflush(stdout);

    std::atomic<bool> signalled{false};
    std::thread stopper([&http, &signalled, stop_signals] {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      signalled = true;
      std::fprintf(stderr, "varcode serve: signal %d: taking no new work, finishing what was taken\n", sig);
      std::thread second([stop_signals] {
        int again = 0;
        sigwait(&stop_signals, &again);
        std::fprintf(stderr, "varcode serve: second signal: exiting now\n");
        std::_Exit(1);
      });
      second.detach();
      http.shutdown();
    });
    http.serve();
    // The listener ended without a signal (it failed): wake the stopper so that it can end too.
    if (!signalled) pthread_kill(stopper.native_handle(), SIGTERM);
    stopper.join();
    std::fprintf(stderr, "varcode serve: stopped\n");
  });
}

}  // namespace varcode::cli
