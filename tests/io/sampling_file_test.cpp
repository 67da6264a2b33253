// sampling.json: what a model ships as its own sampling defaults (io/sampling_file.hpp), and the
// generator taking them over the published settings (Generator::default_sampling).
#include "io/sampling_file.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "io/io_test_util.hpp"
#include "test_util.hpp"
#include "varcode/generator.hpp"

namespace varcode::io {
namespace {

TEST(SamplingFile, ReadsEveryFieldOfBothModes) {
  TempDir dir;
  write_bytes(dir.path("sampling.json"),
              R"({"note": "tuned", "var": {"cfg": 2, "top_k": 100, "top_p": 0.9, "temperature": 0.8},
                  "code": {"temperature": [1, 1, 0.5]}})");
  const SamplingFile f = read_sampling_file(dir.path("sampling.json"));
  EXPECT_EQ(f.path, dir.path("sampling.json"));
  EXPECT_EQ(f.var.cfg, 2.0);
  EXPECT_EQ(f.var.top_k, 100);
  EXPECT_EQ(f.var.top_p, 0.9);
  EXPECT_EQ(f.var.temperature, std::vector<double>{0.8});
  EXPECT_FALSE(f.code.cfg || f.code.top_k || f.code.top_p);  // not given: the published value stays
  EXPECT_EQ(f.code.temperature, (std::vector<double>{1, 1, 0.5}));
}

TEST(SamplingFile, BadFilesNameTheFileAndTheField) {
  TempDir dir;
  const std::string p = dir.path("sampling.json");
  auto refused = [&](const std::string& text, const std::vector<std::string>& parts) {
    write_bytes(p, text);
    std::vector<std::string> with_path = parts;
    with_path.push_back(p);
    expect_error([&] { read_sampling_file(p); }, with_path);
  };
  refused("{\"var\": ", {"not valid JSON"});
  refused("[1, 2]", {"expected an object"});
  refused(R"({"vra": {}})", {"field vra", "unknown field"});
  refused(R"({"var": {"topk": 5}})", {"var.topk", "unknown field"});
  refused(R"({"var": {"top_k": -1}})", {"var.top_k", "integer >= 0"});
  refused(R"({"var": {"top_k": 2.5}})", {"var.top_k", "integer >= 0"});
  refused(R"({"code": {"top_p": 1.5}})", {"code.top_p", "[0, 1]"});
  refused(R"({"code": {"cfg": "high"}})", {"code.cfg", "number"});
  refused(R"({"code": {"temperature": [1, 0]}})", {"code.temperature", "> 0"});
  refused(R"({"code": {"temperature": []}})", {"code.temperature"});
  refused(R"({"code": 3})", {"field code", "object"});
  refused(R"({"note": 3})", {"field note", "string"});
  expect_error([&] { read_sampling_file(dir.path("missing.json")); }, {"missing.json", "cannot be read"});
}

TEST(SamplingFile, TheModelsOwnFileComesBeforeItsDirectorys) {
  TempDir dir;
  EXPECT_FALSE(find_sampling_file(dir.path("model.pth")));
  write_bytes(dir.path("sampling.json"), R"({"var": {"top_k": 7}})");
  EXPECT_EQ(find_sampling_file(dir.path("model.pth"))->var.top_k, 7);
  write_bytes(dir.path("model.sampling.json"), R"({"var": {"top_k": 9}})");
  EXPECT_EQ(find_sampling_file(dir.path("model.pth"))->var.top_k, 9);
  EXPECT_EQ(find_sampling_file(dir.path("other.pth"))->var.top_k, 7);
}

// The tiny fixtures linked into a folder of their own, beside a sampling.json.
ModelFiles linked_fixtures(const TempDir& dir) {
  for (const char* name : {"vae.pth", "drafter.pth", "refiner.pth"})
    std::filesystem::create_symlink(test::fixture(std::string("tiny/") + name), dir.path(name));
  ModelFiles f;
  f.vae = dir.path("vae.pth");
  f.drafter = dir.path("drafter.pth");
  f.refiner = dir.path("refiner.pth");
  f.draft_steps = 4;
  return f;
}

TEST(SamplingFile, TheGeneratorsDefaultsAreTheFilesOverThePublishedOnes) {
  TempDir dir;
  const ModelFiles pair = linked_fixtures(dir);
  ModelFiles single;
  single.vae = pair.vae;
  single.model = pair.drafter;
  const SamplingOptions published_code = Generator::open(pair).default_sampling();
  const SamplingOptions published_var = Generator::open(single).default_sampling();
  EXPECT_TRUE(Generator::open(pair).sampling_file().empty());
  EXPECT_EQ(published_code.top_k, 600);
  EXPECT_EQ(published_var.top_k, 900);

  write_bytes(dir.path("sampling.json"), R"({"var": {"top_k": 50}, "code": {"cfg": 3, "temperature": 0.7}})");
  const Generator code = Generator::open(pair);
  EXPECT_EQ(code.sampling_file(), dir.path("sampling.json"));
  const SamplingOptions c = code.default_sampling();
  EXPECT_EQ(c.cfg, 3.0);
  EXPECT_EQ(c.temperature, std::vector<double>{0.7});
  EXPECT_EQ(c.top_k, published_code.top_k);  // fields the file leaves out keep the published value
  EXPECT_EQ(c.top_p, published_code.top_p);
  const SamplingOptions v = Generator::open(single).default_sampling();
  EXPECT_EQ(v.top_k, 50);
  EXPECT_EQ(v.cfg, published_var.cfg);
  EXPECT_EQ(v.temperature, published_var.temperature);

  // A request without settings draws with the defaults: the same tokens as asking for them.
  GenerateRequest req;
  req.classes = {1, 2};
  req.seed = 5;
  const Tensor by_default = code.generate(req).tokens;  // [2, L]
  req.sampling = c;
  const Tensor asked = code.generate(req).tokens;  // [2, L]
  ASSERT_EQ(by_default.shape(), asked.shape());
  for (int64_t i = 0; i < asked.numel(); ++i) ASSERT_EQ(by_default.data<int64_t>()[i], asked.data<int64_t>()[i]);
}

TEST(SamplingFile, ATemperatureListOfTheWrongLengthFailsAtOpen) {
  TempDir dir;
  const ModelFiles pair = linked_fixtures(dir);
  write_bytes(dir.path("sampling.json"), R"({"code": {"temperature": [1, 0.5]}})");
  expect_error([&] { Generator::open(pair); }, {dir.path("sampling.json"), "field code", "temperature", "2"});
}

}  // namespace
}  // namespace varcode::io
