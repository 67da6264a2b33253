#include "server/scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "varcode/error.hpp"
#include "varcode/io.hpp"

namespace varcode::server {

const std::vector<int> kBatchBuckets = {1, 2, 4, 8, 16, 32, 64};

namespace {
// Finished jobs of the jobs API stay readable this long, and at most this many of them.
constexpr auto kJobRetention = std::chrono::minutes(15);
constexpr size_t kMaxFinishedJobs = 1000;

std::string new_job_id() {
  static std::mutex mu;
  static std::random_device rd;
  std::lock_guard<std::mutex> lock(mu);
  char buf[40];
  std::snprintf(buf, sizeof buf, "job_%08x%08x%08x", rd(), rd(), rd());
  return buf;
}

bool over(JobState s) { return s == JobState::done || s == JobState::failed || s == JobState::cancelled; }

std::string png_of(const Tensor& images, int64_t b) {
  const int64_t S = images.dim(2), px = 3 * S * S;
  Tensor one = Tensor::empty(DType::f32, {3, S, S});  // [3, S, S]
  std::memcpy(one.data<float>(), images.data<float>() + b * px, sizeof(float) * static_cast<size_t>(px));
  const std::vector<uint8_t> bytes = encode_png(one);
  return std::string(bytes.begin(), bytes.end());
}
}  // namespace

const char* state_name(JobState s) {
  switch (s) {
    case JobState::queued:
      return "queued";
    case JobState::running:
      return "running";
    case JobState::done:
      return "done";
    case JobState::failed:
      return "failed";
    case JobState::cancelled:
      return "cancelled";
  }
  return "unknown";
}

Scheduler::Scheduler(const Generator& gen, SchedulerOptions opt) : gen_(gen), opt_(opt) {
  stats_.batch_size_buckets.assign(kBatchBuckets.size(), 0);
  thread_ = std::thread([this] { worker(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& j : pending_) {
    j->error = "the server stopped before this job ran";
    finish(*j, JobState::failed);
  }
  pending_.clear();
  done_cv_.notify_all();
}

int Scheduler::key_of(const Job& j) const {
  if (j.spec.edit) return -1;
  return j.spec.draft_steps == 0 ? gen_.draft_steps() : j.spec.draft_steps;
}

std::shared_ptr<Job> Scheduler::submit(WorkSpec spec, bool listed, Refusal* why) {
  auto job = std::make_shared<Job>();
  job->spec = std::move(spec);
  job->png.resize(job->spec.classes.size());
  job->created_unix =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  job->enqueued = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (draining_) {
      *why = Refusal::draining;
      return nullptr;
    }
    if (static_cast<int>(pending_.size()) >= opt_.max_queue) {
      *why = Refusal::full;
      return nullptr;
    }
    purge_finished();
    do job->id = new_job_id();
    while (listed_.count(job->id));
    if (listed) listed_[job->id] = job;
    pending_.push_back(job);
  }
  *why = Refusal::none;
  work_cv_.notify_all();
  return job;
}

std::shared_ptr<Job> Scheduler::find(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = listed_.find(id);
  return it == listed_.end() ? nullptr : it->second;
}

void Scheduler::wait(const std::shared_ptr<Job>& job) const {
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return over(job->state); });
}

bool Scheduler::cancel(const std::shared_ptr<Job>& job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (over(job->state)) return false;
  pending_.erase(std::remove(pending_.begin(), pending_.end(), job), pending_.end());
  finish(*job, JobState::cancelled);
  ++stats_.cancelled_total;
  done_cv_.notify_all();
  return true;
}

void Scheduler::finish(Job& j, JobState s) {
  j.state = s;
  ++j.version;
  j.finished_at = std::chrono::steady_clock::now();
  if (listed_.count(j.id)) finished_listed_.push_back(listed_[j.id]);
}

void Scheduler::purge_finished() {
  const auto now = std::chrono::steady_clock::now();
  while (!finished_listed_.empty() &&
         (finished_listed_.size() > kMaxFinishedJobs || now - finished_listed_.front()->finished_at > kJobRetention)) {
    listed_.erase(finished_listed_.front()->id);
    finished_listed_.pop_front();
  }
}

int Scheduler::position_of(const Job& j) const {
  int pos = 0;
  for (const auto& p : pending_) {
    if (p.get() == &j) return pos;
    ++pos;
  }
  return -1;
}

JobView Scheduler::view(const std::shared_ptr<Job>& job) const {
  std::lock_guard<std::mutex> lock(mu_);
  return view_locked(*job);
}

JobView Scheduler::view_after(const std::shared_ptr<Job>& job, uint64_t version,
                              std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait_for(lock, timeout, [&] { return job->version > version || over(job->state); });
  return view_locked(*job);
}

JobView Scheduler::view_locked(const Job& j) const {
  JobView v;
  v.id = j.id;
  v.state = j.state;
  v.created_unix = j.created_unix;
  v.queue_position = j.state == JobState::queued ? position_of(j) : -1;
  v.n = j.spec.classes.size();
  v.images_done = j.images_done;
  for (const std::string& p : j.png) v.image_ready.push_back(!p.empty());
  v.classes = j.spec.classes;
  v.seed = j.spec.seed;
  v.stage = j.stage;
  v.error = j.error;
  v.scale = j.scale;
  v.num_scales = j.num_scales;
  v.version = j.version;
  return v;
}

bool Scheduler::image(const std::shared_ptr<Job>& job, size_t i, std::string* png) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (i >= job->png.size() || job->png[i].empty()) return false;
  *png = job->png[i];
  return true;
}

void Scheduler::drain() {
  draining_ = true;
  work_cv_.notify_all();
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return pending_.empty() && running_images_ == 0; });
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  SchedulerStats s = stats_;
  s.queued_jobs = static_cast<int64_t>(pending_.size());
  s.queued_images = 0;
  for (const auto& j : pending_) s.queued_images += static_cast<int64_t>(j->spec.classes.size() - j->next_image);
  s.running_images = running_images_;
  return s;
}

int Scheduler::retry_after_seconds() const {
  const SchedulerStats s = stats();
  const double per_image = s.images_total > 0 ? s.image_seconds_sum / static_cast<double>(s.images_total) : 1.0;
  const double wait = per_image * static_cast<double>(s.queued_images + s.running_images);
  return static_cast<int>(std::clamp(std::ceil(wait), 1.0, 3600.0));
}

int64_t Scheduler::available_for(int key) const {
  int64_t n = 0;
  for (const auto& j : pending_)
    if (key_of(*j) == key) n += static_cast<int64_t>(j->spec.classes.size() - j->next_image);
  return n;
}

std::vector<Scheduler::Slot> Scheduler::take_batch() {
  std::vector<Slot> batch;
  const int key = key_of(*pending_.front());
  const size_t cap = key == -1 ? 1 : static_cast<size_t>(opt_.max_batch);
  for (auto it = pending_.begin(); it != pending_.end() && batch.size() < cap;) {
    Job& j = **it;
    if (key_of(j) != key) {
      ++it;
      continue;
    }
    while (j.next_image < j.spec.classes.size() && batch.size() < cap) batch.push_back({*it, j.next_image++});
    j.state = JobState::running;
    ++j.version;
    it = j.next_image == j.spec.classes.size() ? pending_.erase(it) : std::next(it);
  }
  return batch;
}

void Scheduler::worker() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || !pending_.empty(); });
    if (stop_) return;
    // Wait for company: until a full batch is there or the oldest has waited batch_window.
    const auto deadline = pending_.front()->enqueued + std::chrono::milliseconds(opt_.batch_window_ms);
    if (!draining_ && available_for(key_of(*pending_.front())) < opt_.max_batch &&
        std::chrono::steady_clock::now() < deadline) {
      work_cv_.wait_until(lock, deadline);
      continue;
    }
    std::vector<Slot> batch = take_batch();
    running_images_ += static_cast<int64_t>(batch.size());
    lock.unlock();
    run_batch(batch);
    lock.lock();
    running_images_ -= static_cast<int64_t>(batch.size());
    done_cv_.notify_all();
  }
}

void Scheduler::run_batch(const std::vector<Slot>& batch) {
  std::atomic<bool> abandon{false};
  // Progress: every job of the batch follows the engine's scale; a batch whose jobs were all
  // cancelled is abandoned at the next scale.
  auto progress = [&](const ProgressEvent& e) {
    std::lock_guard<std::mutex> lock(mu_);
    bool any_alive = false;
    for (const Slot& s : batch) {
      Job& j = *s.job;
      if (j.state != JobState::running) continue;
      any_alive = true;
      ++j.version;
      j.stage = e.stage;
      if (e.stage != "vae") {  // the decode has no scale: the last one stays shown
        j.scale = e.scale;
        j.num_scales = e.num_scales;
      }
    }
    if (!any_alive) abandon = true;
    done_cv_.notify_all();  // long polls
  };
  const auto t0 = std::chrono::steady_clock::now();
  GenerateResult res;
  std::string failure;
  try {
    const Job& first = *batch.front().job;
    if (first.spec.edit) {
      EditRequest req;
      req.image = first.spec.image;
      req.mask = first.spec.mask;
      req.class_label = first.spec.classes[0];
      req.seed = first.spec.seed;
      req.sampling = first.spec.sampling;
      req.draft_steps = first.spec.draft_steps;
      res = gen_.edit(req, progress, &abandon);
    } else {
      GenerateRequest req;
      req.draft_steps = first.spec.draft_steps;
      for (const Slot& s : batch) {
        req.classes.push_back(s.job->spec.classes[s.image]);
        req.seeds.push_back(s.job->spec.seed);
        req.image_indices.push_back(static_cast<uint32_t>(s.image));
        req.image_sampling.push_back(s.job->spec.sampling);
      }
      res = gen_.generate(req, progress, &abandon);
    }
  } catch (const std::exception& e) {
    failure = abandon ? "" : e.what();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<std::string> pngs(batch.size());
  if (failure.empty() && !abandon)
    for (size_t b = 0; b < batch.size(); ++b) pngs[b] = png_of(res.images, static_cast<int64_t>(b));

  std::lock_guard<std::mutex> lock(mu_);
  if (failure.empty() && !abandon) {
    ++stats_.batches_total;
    const int64_t B = static_cast<int64_t>(batch.size());
    stats_.batch_size_sum += B;
    stats_.max_batch_seen = std::max(stats_.max_batch_seen, B);
    for (size_t i = 0; i < kBatchBuckets.size(); ++i)
      if (B <= kBatchBuckets[i]) ++stats_.batch_size_buckets[i];
    stats_.images_total += B;
    stats_.image_seconds_sum += seconds;
  }
  for (size_t b = 0; b < batch.size(); ++b) {
    Job& j = *batch[b].job;
    if (j.state != JobState::running) continue;  // cancelled (or already failed)
    if (!failure.empty()) {
      j.error = failure;
      pending_.erase(std::remove(pending_.begin(), pending_.end(), batch[b].job), pending_.end());
      finish(j, JobState::failed);
      ++stats_.failed_total;
      continue;
    }
    j.png[batch[b].image] = std::move(pngs[b]);
    ++j.version;
    if (++j.images_done == j.spec.classes.size()) {
      j.stage.clear();
      finish(j, JobState::done);
    } else if (j.next_image < j.spec.classes.size()) {
      j.state = JobState::running;  // more of it waits in the queue
    }
  }
}

}  // namespace varcode::server
