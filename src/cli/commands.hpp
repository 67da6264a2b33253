// The varcode subcommands. Each registers itself on the CLI11 app; all of them use only the
// public API in include/varcode/.
#pragma once
#include <CLI/CLI.hpp>

namespace varcode::cli {

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
