// Golden tests: VAR and CoDe generation against the outputs the official PyTorch code gives for
// the tiny random-weight fixtures (greedy, f32).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "model/token_parity.hpp"
#include "test_util.hpp"
#include "varcode/generator.hpp"
#include "varcode/io.hpp"
#include "varcode/runtime.hpp"

namespace varcode {

namespace {
// The suite's tolerance rule (test::tolerance), from the largest errors measured on these cases.
const double kImageTol = test::tolerance(6.5e-6);  // images in [0, 1]; measured 6.4e-6 (tiny512), 4.6-5.4e-6 (tiny)
const double kLogitTol = test::tolerance(2.7e-5);  // teacher-forced logits; measured 2.7e-5 (oneDNN GEMMs: 2.5e-5)

nlohmann::json case_of(const std::string& dir, const std::string& name) {
  std::ifstream f(test::fixture(dir + "/cases.json"));
  auto j = nlohmann::json::parse(f);
  for (auto& c : j["cases"])
    if (c["name"] == name) return c;
  throw Error("no case " + name);
}

SamplingOptions greedy(const nlohmann::json& c) {
  SamplingOptions s;
  s.cfg = c["cfg"].get<double>();
  s.top_k = c["top_k"].get<int>();
  s.top_p = c["top_p"].get<double>();
  s.temperature = {1.0};
  return s;
}

void run_case(const std::string& dir, const std::string& name) {
  const nlohmann::json c = case_of(dir, name);
  ModelFiles files;
  files.vae = test::fixture(dir + "/vae.pth");
  if (c["mode"] == "var") {
    files.model = test::fixture(dir + "/" + c["model"].get<std::string>());
  } else {
    files.drafter = test::fixture(dir + "/" + c["drafter"].get<std::string>());
    files.refiner = test::fixture(dir + "/" + c["refiner"].get<std::string>());
    files.draft_steps = c["draft_steps"].get<int>();
  }
  Generator gen = Generator::open(files, ComputeDType::f32);
  GenerateRequest req;
  req.classes = c["classes"].get<std::vector<int>>();
  req.sampling = greedy(c);
  GenerateResult res = gen.generate(req);
  const Tensor want_tokens = load_npy(test::fixture(dir + "/" + c["tokens"].get<std::string>()));
  const Tensor gap = load_npy(test::fixture(dir + "/" + c["greedy_gap"].get<std::string>()));
  const test::TokenParity tokens = test::expect_tokens(res.tokens, want_tokens, gap, dir != "tiny", dir + "/" + name);
  if (tokens != test::TokenParity::identical) return;
  Tensor want = load_npy(test::fixture(dir + "/" + c["image"].get<std::string>()));
  const double err = test::max_abs_diff(res.images, want);
  EXPECT_LE(err, kImageTol) << name << ": image max abs err " << err;
  std::cerr << name << ": tokens identical, image max abs err " << err << "\n";
}

void run_teacher_forced(const std::string& name, int stage_model) {
  const nlohmann::json c = case_of("tiny", name);
  ModelFiles files;
  files.vae = test::fixture("tiny/vae.pth");
  files.model = test::fixture("tiny/" + c["model"].get<std::string>());
  Generator gen = Generator::open(files, ComputeDType::f32);
  Tensor tokens = load_npy(test::fixture("tiny/" + c["tokens"].get<std::string>()));     // [2, L]
  Tensor first = Tensor::borrow(DType::i64, {1, tokens.dim(1)}, tokens.raw(), nullptr);  // [1, L]
  Tensor got = gen.teacher_forced_logits(stage_model, first, c["teacher_forced_class"].get<int>());
  Tensor want = load_npy(test::fixture("tiny/" + c["teacher_forced_logits"].get<std::string>()));
  const double err = test::max_abs_diff(got, want);
  EXPECT_LE(err, kLogitTol) << name << ": teacher-forced logits max abs err " << err;
  std::cerr << name << ": teacher-forced logits max abs err " << err << "\n";
}
}  // namespace

TEST(GenerationParity, VarDrafter) { run_case("tiny", "var_drafter"); }
TEST(GenerationParity, VarRefiner) { run_case("tiny", "var_refiner"); }
TEST(GenerationParity, CodeN4) { run_case("tiny", "code_n4"); }
TEST(GenerationParity, CodeN8) { run_case("tiny", "code_n8"); }
TEST(GenerationParity, SharedAdaLn512) { run_case("tiny512", "var_drafter"); }
TEST(GenerationParity, TeacherForcedDrafter) { run_teacher_forced("var_drafter", 0); }
TEST(GenerationParity, TeacherForcedRefiner) { run_teacher_forced("var_refiner", 0); }

}  // namespace varcode
