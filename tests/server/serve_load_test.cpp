// `varcode serve` under load over loopback: 32 concurrent clients with several requests each,
// nothing lost, every image equal to what the same request makes alone (and, for a sample, to the
// `varcode generate` file); batches really merge clients; SIGTERM in the middle of load finishes
// what was taken and exits 0; clients that vanish mid-request leave nothing behind.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <regex>

#include "server/serve_util.hpp"
#include "varcode/generator.hpp"
#include "varcode/io.hpp"

namespace varcode::test {

namespace {

struct Req {
  int cls;
  int n;
  uint64_t seed;
  int variant;  // sampling settings, see body_of
};

json body_of(const Req& r) {
  json b = {{"prompt", std::to_string(r.cls)}, {"n", r.n}, {"seed", r.seed}};
  switch (r.variant) {
    case 1:
      b["cfg"] = 3.0, b["top_k"] = 50;
      break;
    case 2:
      b["top_p"] = 0.8, b["temperature"] = 0.9, b["smooth"] = true;
      break;
    case 3:
      b["draft_steps"] = 2;
      break;
    default:
      break;
  }
  return b;
}

std::string cli_flags_of(const Req& r) {
  switch (r.variant) {
    case 1:
      return "--cfg 3 --top-k 50";
    case 2:
      return "--top-p 0.8 --temperature 0.9 --smooth";
    case 3:
      return builtin_pair_flags(2);
    default:
      return "";
  }
}

// The built-in pair in this process, as `varcode serve` opens it (no model flags, --dtype auto).
const Generator& local_generator() {
  static const Generator gen = [] {
    return Generator::open(test::shipped_pair(3), ComputeDType::automatic);
  }();
  return gen;
}

// The request made alone, in a batch of its own images only.
std::vector<std::string> alone(const Req& r) {
  const Generator& gen = local_generator();
  GenerateRequest g;
  g.classes.assign(static_cast<size_t>(r.n), r.cls);
  g.seed = r.seed;
  SamplingOptions s = gen.default_sampling();
  if (r.variant == 1) s.cfg = 3.0, s.top_k = 50;
  if (r.variant == 2) s.top_p = 0.8, s.temperature = {0.9}, s.smooth = true;
  if (r.variant == 3) g.draft_steps = 2;
  g.sampling = s;
  g.batch = 1;
  GenerateResult res = gen.generate(g);
  std::vector<std::string> out;
  const int64_t S = gen.image_size(), px = 3 * S * S;
  for (int i = 0; i < r.n; ++i) {
    Tensor one = Tensor::empty(DType::f32, {3, S, S});  // [3, S, S]
    std::memcpy(one.data<float>(), res.images.data<float>() + i * px, sizeof(float) * static_cast<size_t>(px));
    const std::vector<uint8_t> b = encode_png(one);
    out.emplace_back(b.begin(), b.end());
  }
  return out;
}

double metric(const std::string& text, const std::string& name) {
  const std::regex re("(^|\n)" + std::regex_replace(name, std::regex(R"([{}"+.])"), R"(\$&)") + " ([0-9.e+-]+)");
  std::smatch m;
  if (!std::regex_search(text, m, re)) return -1;
  return std::stod(m[2]);
}

int raw_connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

TEST(ServeCliLoad, ThirtyTwoClientsLoseNothingAndBatchTogether) {
  ServeProcess server({"--max-batch", "8", "--batch-window", "25"});
  constexpr int kClients = 32, kPerClient = 3;
  std::vector<Req> reqs;
  for (int c = 0; c < kClients; ++c)
    for (int k = 0; k < kPerClient; ++k)
      reqs.push_back({(c + 3 * k) % 10, 1 + c % 2, static_cast<uint64_t>(1000 + c * 10 + k), (c + k) % 4});
  std::vector<std::vector<std::string>> got(reqs.size());
  std::vector<int> status(reqs.size(), -1);
  std::vector<std::string> errors(reqs.size());
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&, c] {
      auto cl = server.client();
      for (int k = 0; k < kPerClient; ++k) {
        const size_t i = static_cast<size_t>(c * kPerClient + k);
        auto r = cl.Post("/v1/images/generations", body_of(reqs[i]).dump(), "application/json");
        if (!r) {
          errors[i] = httplib::to_string(r.error());
          continue;
        }
        status[i] = r->status;
        if (r->status == 200) got[i] = answer_pngs(r->body);
      }
    });
  for (auto& t : clients) t.join();

  int64_t images = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_EQ(status[i], 200) << "request " << i << " " << body_of(reqs[i]).dump() << " " << errors[i];
    const std::vector<std::string> want = alone(reqs[i]);
    ASSERT_EQ(got[i].size(), want.size());
    for (size_t j = 0; j < want.size(); ++j)
      EXPECT_TRUE(got[i][j] == want[j]) << "request " << i << " " << body_of(reqs[i]).dump() << " image " << j;
    images += reqs[i].n;
  }
  // The library's answer is the CLI's: one request of each settings variant against its files.
  TempDir tmp;
  for (size_t i = 0; i < 4; ++i) {
    const std::vector<std::string> files =
        cli_generate_pngs(std::to_string(reqs[i].cls), reqs[i].n, reqs[i].seed, cli_flags_of(reqs[i]), tmp);
    ASSERT_EQ(files.size(), got[i].size());
    for (size_t j = 0; j < files.size(); ++j) EXPECT_TRUE(got[i][j] == files[j]) << "request " << i << " image " << j;
  }

  const std::string m = server.client().Get("/metrics")->body;
  EXPECT_EQ(metric(m, "varcode_images_total"), static_cast<double>(images)) << m;
  const double batches = metric(m, "varcode_batch_size_count"),
               singles = metric(m, "varcode_batch_size_bucket{le=\"1\"}");
  EXPECT_GT(batches, 0) << m;
  EXPECT_LT(singles, batches) << "no batch merged two images:\n" << m;
  EXPECT_GT(metric(m, "varcode_batch_size_max"), 1) << m;
  EXPECT_LE(metric(m, "varcode_batch_size_max"), 8) << m;
  EXPECT_LT(batches, static_cast<double>(reqs.size())) << "requests were not merged:\n" << m;
  EXPECT_EQ(metric(m, "varcode_queue_depth"), 0);
  EXPECT_EQ(server.terminate_and_wait(60), 0) << server.stderr_text();
}

TEST(ServeCliLoad, SigtermMidLoadFinishesWhatWasTakenAndExitsZero) {
  ServeProcess server({"--max-batch", "4", "--batch-window", "5"});
  constexpr int kClients = 16, kMaxPerClient = 12;
  struct Outcome {
    Req req;
    std::chrono::steady_clock::time_point start, end;
    int status = -1;  // -1: no answer (connection refused or reset)
    std::vector<std::string> pngs;
  };
  std::mutex mu;
  std::vector<Outcome> outcomes;
  std::atomic<int> answered{0};
  std::atomic<bool> signalled{false};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&, c] {
      auto cl = server.client();
      for (int k = 0; k < kMaxPerClient; ++k) {
        Outcome o;
        o.req = {(c + k) % 10, 1, static_cast<uint64_t>(5000 + c * 100 + k), k % 3};
        o.start = std::chrono::steady_clock::now();
        auto r = cl.Post("/v1/images/generations", body_of(o.req).dump(), "application/json");
        o.end = std::chrono::steady_clock::now();
        if (r) {
          o.status = r->status;
          if (r->status == 200) o.pngs = answer_pngs(r->body);
        }
        ++answered;
        const bool stop = signalled && o.status != 200;
        {
          std::lock_guard<std::mutex> lock(mu);
          outcomes.push_back(std::move(o));
        }
        if (stop) break;
      }
    });
  const auto wait_until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (answered < kClients && std::chrono::steady_clock::now() < wait_until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto t_sig = std::chrono::steady_clock::now();
  signalled = true;
  const int exit_code = server.terminate_and_wait(120);
  for (auto& t : clients) t.join();
  EXPECT_EQ(exit_code, 0) << server.stderr_text();

  int finished_after_signal = 0;
  for (const Outcome& o : outcomes) {
    if (o.start < t_sig) {
      // Sent while the server was listening: answered, never dropped.
      EXPECT_TRUE(o.status == 200 || o.status == 503) << body_of(o.req).dump() << " -> " << o.status;
      if (o.status == 200 && o.end > t_sig) ++finished_after_signal;
    } else {
      EXPECT_TRUE(o.status == 503 || o.status == -1 || o.status == 200) << o.status;
    }
    if (o.status == 200) {
      EXPECT_TRUE(o.pngs == alone(o.req)) << body_of(o.req).dump();
    }
  }
  EXPECT_GT(finished_after_signal, 0) << "no request in flight at SIGTERM was finished";
}

TEST(ServeCliLoad, VanishedClientsLeakNothingAndStallNoOne) {
  ServeProcess server({"--max-batch", "8", "--batch-window", "10"});
  const std::string full = json{{"prompt", "bag"}, {"n", 4}, {"seed", 1}}.dump();
  for (int i = 0; i < 8; ++i) {
    // Half a body, then gone.
    int fd = raw_connect(server.port());
    ASSERT_GE(fd, 0);
    const std::string partial =
        "POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 500\r\n\r\n{\"prompt\":";
    ASSERT_GT(send(fd, partial.data(), partial.size(), MSG_NOSIGNAL), 0);
    close(fd);
    // A whole request, gone before the answer.
    fd = raw_connect(server.port());
    ASSERT_GE(fd, 0);
    const std::string whole =
        "POST /v1/images/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
        "application/json\r\nContent-Length: " +
        std::to_string(full.size()) + "\r\n\r\n" + full;
    ASSERT_GT(send(fd, whole.data(), whole.size(), MSG_NOSIGNAL), 0);
    close(fd);
  }
  // Others are served meanwhile.
  auto c = server.client();
  auto r = c.Post("/v1/images/generations", json{{"prompt", "coat"}, {"seed", 3}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(answer_pngs(r->body) == alone({4, 1, 3, 0}));
  // The abandoned work drains away.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::string m;
  for (;;) {
    m = c.Get("/metrics")->body;
    if (metric(m, "varcode_queue_depth") == 0 && metric(m, "varcode_running_images") == 0) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << m;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(c.Get("/health")->status, 200);
  EXPECT_EQ(server.terminate_and_wait(60), 0) << server.stderr_text();
}

}  // namespace varcode::test
