// The engine's one worker and its queue. Waiting requests are merged into one engine batch of up
// to max_batch images (every image keeps its own class, seed, index and sampling settings:
// GenerateRequest::seeds / ::image_sampling), the oldest waiting at most batch_window for company.
// Only the hand-over point (draft_steps) must match inside a batch; edits run one at a time.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/params.hpp"
#include "varcode/generator.hpp"

namespace varcode::server {

enum class JobState { queued, running, done, failed, cancelled };
const char* state_name(JobState s);

struct Job {
  std::string id;
  WorkSpec spec;
  int64_t created_unix = 0;
  std::chrono::steady_clock::time_point enqueued;

  // Guarded by the scheduler's mutex.
  JobState state = JobState::queued;
  size_t next_image = 0;         // images handed to batches so far
  size_t images_done = 0;        // images finished
  std::vector<std::string> png;  // per image, filled as each finishes
  std::string error;
  std::string stage;  // the engine's stage now: "drafter", "refiner", "var", "vae"
  int scale = -1, num_scales = 0;
  uint64_t version = 0;  // bumped on every change a client can see (long polls wait for it)
  std::chrono::steady_clock::time_point finished_at;
};

// A copy of a job's state, taken under the lock.
struct JobView {
  std::string id;
  JobState state = JobState::queued;
  int64_t created_unix = 0;
  int queue_position = -1;  // jobs ahead of it (queued only)
  size_t n = 0, images_done = 0;
  std::vector<bool> image_ready;
  std::vector<int> classes;
  uint64_t seed = 0;
  std::string stage, error;
  int scale = -1, num_scales = 0;
  uint64_t version = 0;
};

struct SchedulerStats {
  int64_t queued_jobs = 0, queued_images = 0, running_images = 0;
  int64_t images_total = 0, batches_total = 0, failed_total = 0, cancelled_total = 0;
  double image_seconds_sum = 0;             // engine seconds per image (a batch's time / its images), summed
  std::vector<int64_t> batch_size_buckets;  // count of batches with size <= kBatchBuckets[i]
  int64_t batch_size_sum = 0;
  int64_t max_batch_seen = 0;
};
extern const std::vector<int> kBatchBuckets;

struct SchedulerOptions {
  int max_batch = 8;
  int max_queue = 64;
  int batch_window_ms = 20;
};

class Scheduler {
 public:
  Scheduler(const Generator& gen, SchedulerOptions opt);
  ~Scheduler();  // stops the worker; jobs still waiting fail
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  enum class Refusal { none, full, draining };
  // Queues the work; null with *why set when the queue is full or the server is stopping. `listed`
  // jobs can be found by id (the jobs API); the others belong to the request waiting for them.
  std::shared_ptr<Job> submit(WorkSpec spec, bool listed, Refusal* why);
  std::shared_ptr<Job> find(const std::string& id) const;
  // Blocks until the job is done, failed or cancelled.
  void wait(const std::shared_ptr<Job>& job) const;
  // Cancels a queued or running job (a running batch is abandoned when all its jobs are
  // cancelled; otherwise the job's images are dropped as they finish). False when already over.
  bool cancel(const std::shared_ptr<Job>& job);
  JobView view(const std::shared_ptr<Job>& job) const;
  // The view once the job has changed past `version` (or is over), or after `timeout`: a long
  // poll, so that a page sees each scale without polling fast.
  JobView view_after(const std::shared_ptr<Job>& job, uint64_t version, std::chrono::milliseconds timeout) const;
  // The PNG of image i, when it is made.
  bool image(const std::shared_ptr<Job>& job, size_t i, std::string* png) const;

  // Stops taking work and returns when everything taken is finished.
  void drain();
  bool draining() const { return draining_.load(); }
  SchedulerStats stats() const;
  // Seconds a new request should wait before trying again (the queue's work at the measured pace).
  int retry_after_seconds() const;

 private:
  struct Slot {
    std::shared_ptr<Job> job;
    size_t image;
  };
  void worker();
  int key_of(const Job& j) const;  // the hand-over point the batch must share
  int64_t available_for(int key) const;
  std::vector<Slot> take_batch();
  void run_batch(const std::vector<Slot>& batch);
  void finish(Job& j, JobState s);
  void purge_finished();
  int position_of(const Job& j) const;
  JobView view_locked(const Job& j) const;

  const Generator& gen_;
  const SchedulerOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  mutable std::condition_variable done_cv_;
  std::deque<std::shared_ptr<Job>> pending_;  // jobs with images not yet in a batch, oldest first
  std::map<std::string, std::shared_ptr<Job>> listed_;
  std::deque<std::shared_ptr<Job>> finished_listed_;  // for retention, oldest first
  int64_t running_images_ = 0;
  std::atomic<bool> draining_{false};
  bool stop_ = false;
  SchedulerStats stats_;
  std::thread thread_;
};

}  // namespace varcode::server
