#include "model/validate.hpp"

#include "model/config.hpp"
#include "model/var_transformer.hpp"
#include "model/vqvae.hpp"

namespace varcode::model {

void validate_checkpoint(const io::Checkpoint& ckpt) {
  if (detect_kind(ckpt) == ModelKind::var) {
    VarTransformer model(ckpt, DType::f32, /*check_only=*/true);
  } else {
    Vqvae::load(ckpt);
  }
}

}  // namespace varcode::model
