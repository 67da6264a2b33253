// varcode inspect FILE [--json] / varcode convert IN OUT.safetensors [--dtype]
#include <iostream>
#include <memory>

#include "commands.hpp"
#include "varcode/model_info.hpp"

namespace varcode::cli {

namespace {
std::string join(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}
}  // namespace

void register_inspect(CLI::App& app) {
  struct Opts {
    std::string file;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("inspect", "Recognise and validate a model file, print its configuration");
  cmd->add_option("file", o->file, "A .pth or .safetensors model file")->required();
  cmd->add_flag("--json", o->json, "Print exactly one JSON object on stdout");
  cmd->callback([o] {
    const ModelInfo info = inspect_model(o->file);
    if (o->json) {
      std::cout << model_info_json(info) << "\n";
      return;
    }
    std::cout << "file        " << info.path << "\n"
              << "kind        " << info.kind << "\n"
              << "container   " << info.container << "\n"
              << "dtype       " << info.dtype << "\n"
              << "parameters  " << info.params << " (" << info.tensors << " tensors)\n";
    if (info.kind == "var") {
      std::cout << "depth       " << info.depth << "\n"
                << "width       " << info.width << " (" << info.heads << " heads)\n"
                << "vocabulary  " << info.vocab << "\n"
                << "classes     " << info.num_classes << "\n"
                << "patch_nums  " << join(info.patch_nums) << " (latent " << info.latent_side << "x" << info.latent_side
                << ")\n"
                << "shared AdaLN " << (info.shared_adaln ? "yes" : "no") << "\n";
    } else {
      std::cout << "ch          " << info.ch << " (ch_mult " << join(info.ch_mult) << ", " << info.num_res_blocks
                << " res blocks)\n"
                << "vocabulary  " << info.vocab << "\n"
                << "z_channels  " << info.z_channels << "\n";
    }
    std::cout << "valid       yes\n";
  });
}

void register_convert(CLI::App& app) {
  struct Opts {
    std::string in, out, dtype = "f32";
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("convert", "Write a model as safetensors (configuration in the metadata)");
  cmd->add_option("in", o->in, "A .pth or .safetensors model file (random:dNN / random: random weights, official size)")->required();
  cmd->add_option("out", o->out, "Output .safetensors path")->required();
  cmd->add_option("--dtype", o->dtype,
                  "f32, f16, bf16, or int8 (a VAR model's linear weights as int8 with per-channel scales, "
                  "`<name>` I8 + `<name>.scale` F32; the rest as in the input)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "int8"}));
  cmd->callback([o] {
    convert_model(o->in, o->out, parse_dtype(o->dtype, "--dtype"));
    std::cerr << "wrote " << o->out << "\n";
  });
}

}  // namespace varcode::cli
