// The server library in-process, without generating (so that it also runs under ASan): request
// fields to work (every bad value a BadRequest naming its field), and the scheduler's queue:
// positions, the queue limit, cancellation, draining.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "server/params.hpp"
#include "server/scheduler.hpp"
#include "shipped_models.hpp"
#include "varcode/io.hpp"

namespace varcode::server {

namespace {

using json = nlohmann::json;

const ServedModel& fashion() {
  static const ServedModel m = [] {
    const ModelFiles f = test::shipped_pair(3);
    ServedModel s;
    s.generator = Generator::open(f, ComputeDType::f32);
    s.class_names = load_class_names(f.drafter, s.generator.num_classes());
    // Numbers and exact names only: the CLI's full class syntax is tested with the binary.
    s.parse_classes = [names = s.class_names](const std::string& text, const std::string& field) {
      for (size_t i = 0; i < names.size(); ++i)
        if (names[i] == text || std::to_string(i) == text) return std::vector<int>{static_cast<int>(i)};
      throw Error(field + ": '" + text + "' is not a class");
    };
    return s;
  }();
  return m;
}

std::string field_of(const json& body) {
  try {
    parse_generation(body, fashion(), ServerOptions{});
  } catch (const BadRequest& e) {
    return e.field();
  }
  return "";
}

}  // namespace

TEST(ServeParams, GenerationFieldsBecomeWork) {
  const json body = {{"prompt", "Sneaker"}, {"n", 3},         {"seed", "18446744073709551615"},
                     {"cfg", 2.5},          {"top_k", 10},    {"top_p", 0.5},
                     {"temperature", 0.7},  {"smooth", true}, {"draft_steps", 2}};
  const WorkSpec w = parse_generation(body, fashion(), ServerOptions{});
  EXPECT_EQ(w.classes, (std::vector<int>{7, 7, 7}));
  EXPECT_EQ(w.seed, 18446744073709551615ULL);
  EXPECT_EQ(w.sampling.cfg, 2.5);
  EXPECT_EQ(w.sampling.top_k, 10);
  EXPECT_EQ(w.sampling.top_p, 0.5);
  EXPECT_EQ(w.sampling.temperature, std::vector<double>{0.7});
  EXPECT_TRUE(w.sampling.smooth);
  EXPECT_EQ(w.draft_steps, 2);
  // Omitted fields are the pipeline's defaults (the published settings, or the model's sampling.json).
  const WorkSpec d = parse_generation({{"prompt", 1}}, fashion(), ServerOptions{});
  const SamplingOptions def = fashion().generator.default_sampling();
  EXPECT_EQ(d.classes, std::vector<int>{1});
  EXPECT_EQ(d.sampling.top_k, def.top_k);
  EXPECT_EQ(d.sampling.temperature, def.temperature);
  EXPECT_EQ(d.draft_steps, 0);
}

TEST(ServeParams, BadFieldsAreNamed) {
  EXPECT_EQ(field_of(json::array()), "body");
  EXPECT_EQ(field_of({{"n", 1}}), "prompt");
  EXPECT_EQ(field_of({{"prompt", "Unicorn"}}), "prompt");
  EXPECT_EQ(field_of({{"prompt", true}}), "prompt");
  EXPECT_EQ(field_of({{"prompt", 1}, {"n", 0}}), "n");
  EXPECT_EQ(field_of({{"prompt", 1}, {"n", 17}}), "n");
  EXPECT_EQ(field_of({{"prompt", 1}, {"cfg", 51}}), "cfg");
  EXPECT_EQ(field_of({{"prompt", 1}, {"cfg", "1"}}), "cfg");  // JSON numbers are numbers
  EXPECT_EQ(field_of({{"prompt", 1}, {"top_k", -1}}), "top_k");
  EXPECT_EQ(field_of({{"prompt", 1}, {"top_p", -0.1}}), "top_p");
  EXPECT_EQ(field_of({{"prompt", 1}, {"temperature", json::array({1, 1, 1})}}), "temperature");
  EXPECT_EQ(field_of({{"prompt", 1}, {"temperature", -1}}), "temperature");
  EXPECT_EQ(field_of({{"prompt", 1}, {"smooth", 1}}), "smooth");
  EXPECT_EQ(field_of({{"prompt", 1}, {"draft_steps", 9}}), "draft_steps");
  EXPECT_EQ(field_of({{"prompt", 1}, {"seed", 1.5}}), "seed");
  EXPECT_EQ(field_of({{"prompt", 1}, {"seed", "-4"}}), "seed");
  EXPECT_EQ(field_of({{"prompt", 1}, {"response_format", "url"}}), "response_format");
  EXPECT_EQ(field_of({{"prompt", 1}, {"size", "256x256"}}), "size");
  EXPECT_EQ(field_of({{"prompt", 1}, {"guidance", 2}}), "guidance");
  EXPECT_EQ(field_of({{"prompt", 1}, {"size", "32x32"}, {"model", "any"}}), "");
}

TEST(ServeParams, EditFormsBecomeWork) {
  Tensor pic = Tensor::zeros(DType::f32, {3, 32, 32});  // [3, H, W]
  const std::string path = ::testing::TempDir() + "/varcode_params_pic.png";
  save_png(path, pic);
  std::ifstream f(path, std::ios::binary);
  EditUpload up;
  up.image_png.assign(std::istreambuf_iterator<char>(f), {});
  up.has_image = true;
  up.fields = {{"class", "Bag"}, {"box", "0,16,32,32"}, {"seed", "4"}, {"cfg", "2"}, {"smooth", "on"}};
  const WorkSpec w = parse_edit(up, fashion(), ServerOptions{});
  EXPECT_TRUE(w.edit);
  EXPECT_EQ(w.classes, std::vector<int>{8});
  EXPECT_EQ(w.seed, 4u);
  EXPECT_EQ(w.sampling.cfg, 2.0);
  EXPECT_TRUE(w.sampling.smooth);
  ASSERT_EQ(w.mask.shape(), (Shape{32, 32}));
  EXPECT_EQ(w.mask.data<float>()[0], 0.0f);
  EXPECT_EQ(w.mask.data<float>()[31 * 32], 1.0f);
  up.fields["box"] = "0,16,33,32";
  EXPECT_THROW(parse_edit(up, fashion(), ServerOptions{}), BadRequest);
  up.image_png = "not a png";
  try {
    parse_edit(up, fashion(), ServerOptions{});
    FAIL() << "a broken picture was taken";
  } catch (const BadRequest& e) {
    EXPECT_EQ(e.field(), "image");
  }
}

TEST(ServeScheduler, QueuePositionsLimitCancelAndDrain) {
  // A minute's batch window: nothing runs while the test looks at the queue.
  Scheduler s(fashion().generator, SchedulerOptions{16, 3, 60000});
  WorkSpec w = parse_generation({{"prompt", 1}, {"seed", 1}}, fashion(), ServerOptions{});
  Scheduler::Refusal why;
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 3; ++i) {
    jobs.push_back(s.submit(w, true, &why));
    ASSERT_TRUE(jobs.back());
    EXPECT_EQ(why, Scheduler::Refusal::none);
    EXPECT_EQ(s.view(jobs.back()).queue_position, i);
  }
  EXPECT_FALSE(s.submit(w, true, &why));
  EXPECT_EQ(why, Scheduler::Refusal::full);
  EXPECT_GE(s.retry_after_seconds(), 1);
  EXPECT_EQ(s.find(jobs[1]->id), jobs[1]);
  EXPECT_EQ(s.find("job_nope"), nullptr);
  EXPECT_TRUE(s.cancel(jobs[0]));
  EXPECT_FALSE(s.cancel(jobs[0]));
  EXPECT_EQ(s.view(jobs[0]).state, JobState::cancelled);
  EXPECT_EQ(s.view(jobs[1]).queue_position, 0);
  std::string png;
  EXPECT_FALSE(s.image(jobs[0], 0, &png));
  EXPECT_TRUE(s.cancel(jobs[1]));
  EXPECT_TRUE(s.cancel(jobs[2]));
  const SchedulerStats st = s.stats();
  EXPECT_EQ(st.queued_jobs, 0);
  EXPECT_EQ(st.cancelled_total, 3);
  EXPECT_EQ(st.images_total, 0);
  s.drain();  // nothing taken: returns at once
  EXPECT_TRUE(s.draining());
  EXPECT_FALSE(s.submit(w, false, &why));
  EXPECT_EQ(why, Scheduler::Refusal::draining);
}

}  // namespace varcode::server
