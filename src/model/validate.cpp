#include "model/validate.hpp"

#include "model/config.hpp"
#include "model/var_transformer.hpp"
#include "model/vqvae.hpp"

namespace varcode::model {

void validate_checkpoint(const io::Checkpoint& ckpt) {
  if (detect_kind(ckpt) == ModelKind::var) {
    // Keep the matrices in the file's dtype: validation must not convert 2 B parameters.
    DType dt = DType::f32;
    if (ckpt.has("blocks.0.attn.mat_qkv.weight")) dt = ckpt.tensor("blocks.0.attn.mat_qkv.weight").dtype();
    if (dt == DType::i64) dt = DType::f32;
    VarTransformer model(ckpt, dt);
  } else {
    Vqvae::load(ckpt);
  }
}

}  // namespace varcode::model
