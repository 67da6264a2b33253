// What kind of failure an exception from the C++ API is, for the layers that report kinds rather
// than exceptions (the C API's status codes, the Python package's exception types).
#pragma once
#include <exception>
#include <filesystem>
#include <new>
#include <string>
#include <vector>

#include "varcode/error.hpp"

namespace varcode::api {

enum class ErrorKind { invalid_argument, file, cancelled, out_of_memory, runtime };

struct Failure {
  ErrorKind kind = ErrorKind::runtime;
  std::string message;
};

// Call inside a catch block. The library throws varcode::Error for every user-facing failure and
// names the file first when a file is at fault, so an Error whose message starts with one of
// `files` (the paths the failed call read) is a file error and any other Error a bad argument.
// `cancelled`: the cancellation flag was raised, so the engine's Error is its cancellation.
inline Failure classify_current_exception(const std::vector<std::string>& files, bool cancelled = false) {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return {ErrorKind::out_of_memory, "out of memory"};
  } catch (const Error& e) {
    const std::string m = e.what();
    if (cancelled) return {ErrorKind::cancelled, m};
    if (m.rfind("out of memory", 0) == 0) return {ErrorKind::out_of_memory, m};  // Tensor's failed allocation
    for (const std::string& f : files)
      if (!f.empty() && m.rfind(f, 0) == 0) return {ErrorKind::file, m};
    return {ErrorKind::invalid_argument, m};
  } catch (const std::filesystem::filesystem_error& e) {
    return {ErrorKind::file, e.what()};
  } catch (const std::exception& e) {
    return {ErrorKind::runtime, e.what()};
  } catch (...) {
    return {ErrorKind::runtime, "unknown error"};
  }
}

}  // namespace varcode::api
