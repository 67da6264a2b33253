// Whole-file validation: build the inferred architecture from the checkpoint so that every
// missing, unexpected or mis-shaped tensor is reported by name.
#pragma once
#include "io/checkpoint.hpp"

namespace varcode::model {

void validate_checkpoint(const io::Checkpoint& ckpt);

}  // namespace varcode::model
