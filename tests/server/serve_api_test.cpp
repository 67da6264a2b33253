// `varcode serve` over loopback with the built-in Fashion-MNIST pair: every endpoint, the answers
// equal to `varcode generate` / `varcode edit` byte for byte, and every error the issue lists.
#include <memory>

#include "server/serve_util.hpp"
#include "varcode/io.hpp"
#include "varcode/runtime.hpp"

namespace varcode::test {

namespace {

class ServeCliApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServeProcess({"--max-batch", "8", "--batch-window", "10", "--max-body-mb", "1"});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static httplib::Result post_json(const json& body) {
    return server_->client().Post("/v1/images/generations", body.dump(), "application/json");
  }
  // A 400 naming `field`.
  static void expect_bad(const json& body, const std::string& field) {
    auto r = post_json(body);
    ASSERT_TRUE(r) << "no answer for " << body.dump();
    EXPECT_EQ(r->status, 400) << body.dump() << " -> " << r->body;
    EXPECT_EQ(error_param(r->body), field) << body.dump() << " -> " << r->body;
    EXPECT_NE(r->body.find(field), std::string::npos) << "the message names the field: " << r->body;
  }
  static json wait_job(const std::string& id) {
    auto c = server_->client();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    for (;;) {
      auto r = c.Get("/v1/jobs/" + id);
      if (!r || r->status != 200) throw std::runtime_error("job poll failed");
      json j = json::parse(r->body);
      const std::string s = j["state"];
      if (s == "done" || s == "failed" || s == "cancelled") return j;
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("job did not finish");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  static ServeProcess* server_;
  TempDir tmp_;
};
ServeProcess* ServeCliApi::server_ = nullptr;

// A non-square picture for the edits (the server crops and resizes it as `varcode edit` does).
std::string write_picture(const TempDir& tmp) {
  Tensor img = Tensor::empty(DType::f32, {3, 40, 52});  // [3, H, W]
  for (int64_t i = 0; i < img.numel(); ++i) img.data<float>()[i] = static_cast<float>((i * 37) % 101) / 100.0f;
  const std::string path = tmp.path("picture.png");
  save_png(path, img);
  return path;
}

}  // namespace

TEST_F(ServeCliApi, HealthModelsAndPage) {
  auto c = server_->client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(json::parse(h->body)["status"], "ok");

  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  const json model = json::parse(m->body)["data"][0];
  EXPECT_EQ(model["kind"], "code");
  EXPECT_EQ(model["resolution"], 32);
  EXPECT_EQ(model["schedule"], json::array({1, 2, 3, 4, 6, 8}));
  EXPECT_EQ(model["draft_steps"]["default"], 3);
  EXPECT_EQ(model["draft_steps"]["max"], 5);
  EXPECT_EQ(model["classes"].size(), 10u);
  EXPECT_EQ(model["classes"][7]["name"], "Sneaker");
  EXPECT_EQ(model["files"]["drafter"], "fashion_drafter.pth");

  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(page->body.find("id=\"class-search\""), std::string::npos);
  auto js = c.Get("/app.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 200);
  EXPECT_NE(js->body.find("/v1/jobs"), std::string::npos);
}

TEST_F(ServeCliApi, GenerationsEqualTheCliFiles) {
  // Defaults, and then every sampling field and another hand-over point.
  struct Case {
    json body;
    std::string classes, flags;
    int n;
    uint64_t seed;
  };
  const std::vector<Case> cases = {
      {{{"prompt", "sneaker"}, {"n", 3}, {"seed", 11}, {"response_format", "b64_json"}}, "sneaker", "", 3, 11},
      {{{"prompt", 3},
        {"n", 2},
        {"seed", "18446744073709551615"},
        {"cfg", 3.0},
        {"top_k", 50},
        {"top_p", 0.8},
        {"temperature", 0.9},
        {"smooth", true},
        {"draft_steps", 2}},
       "3",
       builtin_pair_flags(2) + " --cfg 3 --top-k 50 --top-p 0.8 --temperature 0.9 --smooth",
       2,
       18446744073709551615ULL},
      {{{"prompt", "Ankle boot"}, {"seed", 5}, {"temperature", json::array({1.2, 1.2, 1, 1, 0.8, 0.8})}, {"top_k", 1}},
       "9",
       "--temperature 1.2,1.2,1,1,0.8,0.8 --top-k 1",
       1,
       5}};
  for (const Case& c : cases) {
    auto r = post_json(c.body);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    const json answer = json::parse(r->body);
    EXPECT_TRUE(answer.contains("created"));
    ASSERT_EQ(answer["data"].size(), static_cast<size_t>(c.n));
    for (const json& d : answer["data"]) {
      EXPECT_EQ(d["seed"].get<uint64_t>(), c.seed);
      EXPECT_EQ(d["class"].get<int>(), std::stoi(c.classes == "sneaker" ? "7" : c.classes));
    }
    const std::vector<std::string> served = answer_pngs(r->body);
    const std::vector<std::string> files = cli_generate_pngs(c.classes, c.n, c.seed, c.flags, tmp_);
    ASSERT_EQ(files.size(), served.size());
    for (size_t i = 0; i < files.size(); ++i) EXPECT_TRUE(served[i] == files[i]) << c.body.dump() << " image " << i;
  }
  // Without a seed one is drawn, and told.
  auto r = post_json({{"prompt", "bag"}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_TRUE(json::parse(r->body)["data"][0]["seed"].is_number_unsigned());
}

TEST_F(ServeCliApi, BadGenerationRequestsName400Fields) {
  auto c = server_->client();
  auto r = c.Post("/v1/images/generations", "{\"prompt\": \"bag\",", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(error_param(r->body), "body");
  expect_bad(json::array({1, 2}), "body");
  expect_bad({{"n", 1}}, "prompt");
  expect_bad({{"prompt", "unicorn"}}, "prompt");
  expect_bad({{"prompt", 10}}, "prompt");
  expect_bad({{"prompt", "bag"}, {"n", 0}}, "n");
  expect_bad({{"prompt", "bag"}, {"n", 17}}, "n");
  expect_bad({{"prompt", "bag"}, {"n", 1.5}}, "n");
  expect_bad({{"prompt", "all"}, {"n", 2}}, "n");  // 10 classes x 2 > 16 images
  expect_bad({{"prompt", "bag"}, {"cfg", -1}}, "cfg");
  expect_bad({{"prompt", "bag"}, {"cfg", "high"}}, "cfg");
  expect_bad({{"prompt", "bag"}, {"top_k", -3}}, "top_k");
  expect_bad({{"prompt", "bag"}, {"top_k", 2.5}}, "top_k");
  expect_bad({{"prompt", "bag"}, {"top_p", 1.5}}, "top_p");
  expect_bad({{"prompt", "bag"}, {"temperature", 0}}, "temperature");
  expect_bad({{"prompt", "bag"}, {"temperature", json::array({1, 2})}}, "temperature");
  expect_bad({{"prompt", "bag"}, {"smooth", "yes"}}, "smooth");
  expect_bad({{"prompt", "bag"}, {"draft_steps", 0}}, "draft_steps");
  expect_bad({{"prompt", "bag"}, {"draft_steps", 6}}, "draft_steps");
  expect_bad({{"prompt", "bag"}, {"seed", -1}}, "seed");
  expect_bad({{"prompt", "bag"}, {"seed", "abc"}}, "seed");
  expect_bad({{"prompt", "bag"}, {"seed", "18446744073709551616"}}, "seed");
  expect_bad({{"prompt", "bag"}, {"topk", 5}}, "topk");
  expect_bad({{"prompt", "bag"}, {"response_format", "url"}}, "response_format");
  expect_bad({{"prompt", "bag"}, {"size", "64x64"}}, "size");
}

TEST_F(ServeCliApi, OversizeBodyUnknownRoutesAndJobs) {
  auto c = server_->client();
  const std::string big = "{\"prompt\": \"bag\", \"user\": \"" + std::string(size_t{2} << 20, 'x') + "\"}";
  auto r = c.Post("/v1/images/generations", big, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(error_param(r->body), "body");
  r = c.Get("/v1/nothing");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_TRUE(json::parse(r->body).contains("error"));
  for (const char* path : {"/v1/jobs/job_0000", "/v1/jobs/job_0000/images/0.png"}) {
    r = c.Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404) << path;
  }
  r = c.Delete("/v1/jobs/job_0000");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
}

TEST_F(ServeCliApi, JobsRunAndServeTheSameImages) {
  auto c = server_->client();
  const json body = {{"prompt", "dress"}, {"n", 2}, {"seed", 77}};
  auto r = c.Post("/v1/jobs", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  const json queued = json::parse(r->body);
  const std::string id = queued["id"];
  EXPECT_TRUE(queued["state"] == "queued" || queued["state"] == "running");
  EXPECT_EQ(r->get_header_value("Location"), "/v1/jobs/" + id);
  const json done = wait_job(id);
  ASSERT_EQ(done["state"], "done") << done.dump();
  ASSERT_EQ(done["images"].size(), 2u);
  EXPECT_EQ(done["seed"], 77);
  EXPECT_EQ(done["classes"][0]["name"], "Dress");
  EXPECT_EQ(done["progress"]["num_scales"], 6);
  const std::vector<std::string> files = cli_generate_pngs("dress", 2, 77, "", tmp_);
  for (size_t i = 0; i < 2; ++i) {
    auto img = c.Get(done["images"][i].get<std::string>());
    ASSERT_TRUE(img);
    ASSERT_EQ(img->status, 200);
    EXPECT_EQ(img->get_header_value("Content-Type"), "image/png");
    EXPECT_TRUE(img->body == files[i]) << "image " << i;
  }
  r = c.Get("/v1/jobs/" + id + "/images/2.png");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  // The long poll answers at once for a job that is over, with the version it is at.
  r = c.Get("/v1/jobs/" + id + "?after=0");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_GT(json::parse(r->body)["version"].get<uint64_t>(), 0u);
  r = c.Get("/v1/jobs/" + id + "?after=soon");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(error_param(r->body), "after");
  r = c.Delete("/v1/jobs/" + id);  // already done
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 409);
  // Bad input to /v1/jobs is a 400 as well.
  r = c.Post("/v1/jobs", json{{"prompt", "bag"}, {"top_p", 2}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(error_param(r->body), "top_p");
}

TEST_F(ServeCliApi, EditsEqualTheCliFiles) {
  const std::string picture = write_picture(tmp_);
  const std::string png = read_bytes(picture);
  // A mask of the picture's size: a blob in the middle.
  Tensor mask = Tensor::zeros(DType::f32, {3, 40, 52});  // [3, H, W]
  for (int y = 10; y < 30; ++y)
    for (int x = 14; x < 40; ++x) mask.data<float>()[y * 52 + x] = 1.0f;
  const std::string mask_path = tmp_.path("mask.png");
  save_png(mask_path, mask);
  struct Case {
    httplib::MultipartFormDataItems form;
    std::string flags;
  };
  const std::vector<Case> cases = {
      {{{"image", png, "p.png", "image/png"},
        {"mask", read_bytes(mask_path), "m.png", "image/png"},
        {"class", "sneaker", "", ""},
        {"seed", "3", "", ""}},
       "--mask '" + mask_path + "' --class sneaker --seed 3"},
      {{{"image", png, "p.png", "image/png"},
        {"box", "4,4,30,20", "", ""},
        {"class", "2", "", ""},
        {"seed", "9", "", ""},
        {"cfg", "2.5", "", ""},
        {"top_k", "100", "", ""},
        {"smooth", "true", "", ""}},
       "--box 4,4,30,20 --class 2 --seed 9 --cfg 2.5 --top-k 100 --smooth"},
      {{{"image", png, "p.png", "image/png"},
        {"outpaint", "6", "", ""},
        {"class", "bag", "", ""},
        {"seed", "12", "", ""},
        {"draft_steps", "4", "", ""},
        {"temperature", "1.2,1,1,1,1,0.9", "", ""}},
       builtin_pair_flags(4) + " --outpaint 6 --class bag --seed 12 --temperature 1.2,1,1,1,1,0.9"},
  };
  auto c = server_->client();
  int k = 0;
  for (const Case& cs : cases) {
    auto r = c.Post("/v1/edits", cs.form);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    const std::vector<std::string> served = answer_pngs(r->body);
    ASSERT_EQ(served.size(), 1u);
    const std::string out = tmp_.path("edited" + std::to_string(k++) + ".png");
    RunResult cli = run_cli("edit --image '" + picture + "' " + cs.flags + " --out '" + out + "' --quiet", tmp_);
    ASSERT_EQ(cli.exit_code, 0) << cli.err;
    EXPECT_TRUE(served[0] == read_bytes(out)) << cs.flags;
  }
  // The same through the jobs API.
  auto r = c.Post("/v1/jobs", cases[0].form);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 202) << r->body;
  const json done = wait_job(json::parse(r->body)["id"]);
  ASSERT_EQ(done["state"], "done");
  auto img = c.Get(done["images"][0].get<std::string>());
  ASSERT_TRUE(img);
  EXPECT_TRUE(img->body == read_bytes(tmp_.path("edited0.png")));
}

TEST_F(ServeCliApi, BadEditsName400Fields) {
  const std::string png = read_bytes(write_picture(tmp_));
  Tensor black = Tensor::zeros(DType::f32, {3, 40, 52});  // [3, H, W]
  const std::string black_path = tmp_.path("black.png");
  save_png(black_path, black);
  Tensor odd = Tensor::empty(DType::f32, {3, 10, 20});  // [3, 10, 20]: neither the picture's size nor square
  for (int64_t i = 0; i < odd.numel(); ++i) odd.data<float>()[i] = 1.0f;
  const std::string odd_path = tmp_.path("odd.png");
  save_png(odd_path, odd);
  using Form = httplib::MultipartFormDataItems;
  const httplib::MultipartFormData image{"image", png, "p.png", "image/png"};
  const httplib::MultipartFormData cls{"class", "bag", "", ""};
  const std::vector<std::pair<Form, std::string>> cases = {
      {{cls, {"box", "1,1,5,5", "", ""}}, "image"},
      {{{"image", "not a png", "p.png", "image/png"}, cls, {"box", "1,1,5,5", "", ""}}, "image"},
      {{image, cls}, "mask"},
      {{image, cls, {"box", "1,1,5,5", "", ""}, {"outpaint", "3", "", ""}}, "outpaint"},
      {{image, cls, {"box", "0,0,60,10", "", ""}}, "box"},
      {{image, cls, {"box", "5,5,5,9", "", ""}}, "box"},
      {{image, cls, {"box", "a,b", "", ""}}, "box"},
      {{image, cls, {"outpaint", "20", "", ""}}, "outpaint"},
      {{image, cls, {"mask", read_bytes(black_path), "m.png", "image/png"}}, "mask"},
      {{image, cls, {"mask", read_bytes(odd_path), "m.png", "image/png"}}, "mask"},
      {{image, {"class", "unicorn", "", ""}, {"box", "1,1,5,5", "", ""}}, "class"},
      {{image, {"box", "1,1,5,5", "", ""}}, "class"},
      {{image, cls, {"box", "1,1,5,5", "", ""}, {"top_p", "7", "", ""}}, "top_p"},
      {{image, cls, {"box", "1,1,5,5", "", ""}, {"strength", "1", "", ""}}, "strength"},
  };
  auto c = server_->client();
  for (const auto& [form, field] : cases) {
    auto r = c.Post("/v1/edits", form);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << field << ": " << r->body;
    EXPECT_EQ(error_param(r->body), field) << r->body;
  }
  auto r = c.Post("/v1/edits", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(error_param(r->body), "body");
}

TEST_F(ServeCliApi, MetricsArePrometheusText) {
  ASSERT_EQ(post_json({{"prompt", "coat"}, {"n", 2}, {"seed", 1}})->status, 200);
  auto r = server_->client().Get("/metrics");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  for (const char* line :
       {"# TYPE varcode_queue_depth gauge", "varcode_queue_depth 0", "# TYPE varcode_images_total counter",
        "varcode_image_seconds_sum ", "varcode_image_seconds_count ", "# TYPE varcode_batch_size histogram",
        "varcode_batch_size_bucket{le=\"1\"} ", "varcode_batch_size_bucket{le=\"+Inf\"} ",
        "varcode_http_requests_total{route=\"POST /v1/images/generations\",code=\"200\"} "})
    EXPECT_NE(r->body.find(line), std::string::npos) << line << "\n" << r->body;
}

// Queue limits, cancellation and the API key need servers of their own.
TEST(ServeCliLimits, FullQueueIs503AndQueuedJobsCancel) {
  // A long batch window keeps the jobs queued while the test looks at them.
  ServeProcess server({"--max-queue", "2", "--max-batch", "16", "--batch-window", "60000"});
  auto c = server.client();
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    auto r = c.Post("/v1/jobs", json{{"prompt", "bag"}, {"seed", i}}.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 202) << r->body;
    const json j = json::parse(r->body);
    EXPECT_EQ(j["state"], "queued");
    EXPECT_EQ(j["queue_position"], i);
    ids.push_back(j["id"]);
  }
  auto full = c.Post("/v1/images/generations", json{{"prompt", "bag"}}.dump(), "application/json");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->status, 503);
  EXPECT_TRUE(full->has_header("Retry-After"));
  EXPECT_GE(std::stoi(full->get_header_value("Retry-After")), 1);
  auto full_job = c.Post("/v1/jobs", json{{"prompt", "bag"}}.dump(), "application/json");
  ASSERT_TRUE(full_job);
  EXPECT_EQ(full_job->status, 503);
  EXPECT_NE(c.Get("/metrics")->body.find("varcode_queue_depth 2"), std::string::npos);
  for (const std::string& id : ids) {
    auto r = c.Delete("/v1/jobs/" + id);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(json::parse(r->body)["state"], "cancelled");
    auto img = c.Get("/v1/jobs/" + id + "/images/0.png");
    ASSERT_TRUE(img);
    EXPECT_EQ(img->status, 409);
    EXPECT_EQ(c.Delete("/v1/jobs/" + id)->status, 409);
  }
  EXPECT_NE(c.Get("/metrics")->body.find("varcode_queue_depth 0"), std::string::npos);
  // Room again.
  auto again = c.Post("/v1/jobs", json{{"prompt", "bag"}}.dump(), "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 202);
}

TEST(ServeCliLimits, ApiKeyIsRequiredEverywhereButHealthAndThePage) {
  ServeProcess server({"--api-key", "s3cret"});
  auto c = server.client();
  EXPECT_EQ(c.Get("/health")->status, 200);
  EXPECT_EQ(c.Get("/")->status, 200);  // the page itself holds nothing; it asks for the key
  for (const char* path : {"/v1/models", "/metrics", "/v1/jobs/job_1"}) {
    auto r = c.Get(path);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401) << path;
    EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Bearer");
    EXPECT_EQ(error_param(r->body), "Authorization");
  }
  auto r = c.Post("/v1/images/generations", json{{"prompt", "bag"}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  r = c.Post("/v1/jobs", json{{"prompt", "bag"}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  httplib::Headers wrong = {{"Authorization", "Bearer s3cre"}};
  EXPECT_EQ(c.Get("/v1/models", wrong)->status, 401);
  httplib::Headers right = {{"Authorization", "Bearer s3cret"}};
  EXPECT_EQ(c.Get("/v1/models", right)->status, 200);
  r = c.Post("/v1/images/generations", right, json{{"prompt", "bag"}, {"seed", 2}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(ServeCliLimits, BadFlagsAreErrors) {
  TempDir tmp;
  if (!cuda_unavailable_reason(0).empty())
    expect_failure(run_cli("serve --device cuda", tmp), "--device cuda: " + cuda_unavailable_reason(0), tmp);
  expect_failure(run_cli("serve --device tpu", tmp), "is not a device", tmp);
  expect_failure(run_cli("serve --host 203.0.113.7 --port 1", tmp), "cannot listen", tmp);
  RunResult r = run_cli("serve --max-batch 0", tmp);
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace varcode::test
