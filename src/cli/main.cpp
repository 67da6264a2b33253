// varcode: command-line entry point. Every failure prints "varcode: error: ..." on stderr, flag
// errors from CLI11 included, and exits with one of the documented statuses (README, "Exit
// statuses"): 0 done, 1 bad input (a flag, a file, a value: the message says which), 2 internal
// error (a bug: please report it), 130 interrupted (SIGINT / SIGTERM; what was complete is kept).
#include <malloc.h>

#include <filesystem>
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
  using varcode::cli::ExitStatus;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --help-all
    std::cerr << "varcode: error: " << e.what()
              << "\n(run `varcode --help` or `varcode <command> --help` for the flags)\n";
    return static_cast<int>(ExitStatus::bad_input);
  } catch (const varcode::cli::Interrupted& e) {
    std::cerr << "varcode: error: " << e.what() << "\n";
    return static_cast<int>(ExitStatus::interrupted);
  } catch (const varcode::Error& e) {
    std::cerr << "varcode: error: " << e.what() << "\n";
    return static_cast<int>(ExitStatus::bad_input);
  } catch (const std::filesystem::filesystem_error& e) {
    std::cerr << "varcode: error: " << e.what() << "\n";  // a path that cannot be read or made
    return static_cast<int>(ExitStatus::bad_input);
  } catch (const std::exception& e) {
    std::cerr << "varcode: error: internal error: " << e.what() << " (please report it)\n";
    return static_cast<int>(ExitStatus::internal);
  }
  return static_cast<int>(ExitStatus::ok);
}
