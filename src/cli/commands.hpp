// The varcode subcommands. Each registers itself on the CLI11 app; all of them use only the
// public API in include/varcode/.
#pragma once
#include <CLI/CLI.hpp>

#include "varcode/error.hpp"

namespace varcode::cli {

// The exit statuses of every command (README, "Exit statuses").
enum class ExitStatus { ok = 0, bad_input = 1, internal = 2, interrupted = 130 };

// A run stopped by SIGINT / SIGTERM (exit status 130); the message says how to resume.
class Interrupted : public Error {
 public:
  using Error::Error;
};

void register_inspect(CLI::App& app);
void register_convert(CLI::App& app);
void register_generate(CLI::App& app);
void register_edit(CLI::App& app);
void register_bench(CLI::App& app);
void register_decode(CLI::App& app);
void register_encode(CLI::App& app);
void register_sample(CLI::App& app);
void register_pack(CLI::App& app);
void register_serve(CLI::App& app);

}  // namespace varcode::cli
