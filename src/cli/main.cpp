// varcode command-line tool.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "commands.hpp"
#include "varcode/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"varcode: VAR and collaborative-decoding image generation"};
  app.require_subcommand(1);
  varcode::cli::register_decode(app);
  varcode::cli::register_encode(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const varcode::Error& e) {
    std::cerr << "varcode: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "varcode: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
