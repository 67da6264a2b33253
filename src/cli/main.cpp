// varcode: command-line entry point. Errors print as "varcode: error: ..." with exit status 1;
// flag errors exit with CLI11's status (non-zero).
#include <malloc.h>

#include <iostream>

#include "commands.hpp"
#include "varcode/error.hpp"

int main(int argc, char** argv) {
  // Generation allocates and frees the same large buffers scale after scale; keeping them in the
  // heap instead of returning them to the kernel saves a page fault per 4 KiB on every reuse.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  CLI::App app{"varcode: VAR and collaborative decoding (CoDe) image generation"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Every command's flags");
  varcode::cli::register_generate(app);
  varcode::cli::register_edit(app);
  varcode::cli::register_bench(app);
  varcode::cli::register_decode(app);
  varcode::cli::register_encode(app);
  varcode::cli::register_sample(app);
  varcode::cli::register_pack(app);
  varcode::cli::register_serve(app);

  varcode::cli::register_inspect(app);
  varcode::cli::register_convert(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const varcode::Error& e) {
    std::cerr << "varcode: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "varcode: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
