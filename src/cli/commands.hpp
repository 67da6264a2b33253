// The varcode subcommands. Each register_* adds one subcommand (options and the callback that
// runs it) to the application; main() calls them all. Commands use only the public API
// (include/varcode/*) and report failures by throwing varcode::Error.
#pragma once

namespace CLI {
class App;
}

namespace varcode::cli {

void register_decode(CLI::App& app);  // varcode decode: tokens -> images
void register_encode(CLI::App& app);  // varcode encode: image -> tokens (+ reconstruction)

}  // namespace varcode::cli
