// The library's device selection: the backend that runs a Device.
#pragma once
#include <memory>

#include "backend/backend.hpp"

namespace varcode::backend {

// cpu -> cpu_backend(); cuda:I -> that GPU's backend (Error naming why when it cannot run).
std::shared_ptr<const Backend> backend_for(Device d);

}  // namespace varcode::backend
