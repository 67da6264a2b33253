// The process-wide thread budget behind set_num_threads (runtime.hpp).
//
// OpenMP's team size is a per-thread setting (the nthreads ICV): omp_set_num_threads() on one
// thread leaves every other thread at the default (all cores), so two requests on two threads
// each started a full team and oversubscribed the cores. Instead every request holds a
// ThreadLease: a share of one budget of N threads, set as its own thread's team size. A request
// alone takes all N; when others arrive, each running request gives back down to its fair share
// (N / requests, at least 1, at most the per-request cap) at its next rebalance point (every scale
// and every decoded image), and a new request waits until a thread is free. So at most N compute
// threads run at any time. Each request thread keeps libgomp's idle pool of its own; only the
// running ones count.
#pragma once

namespace varcode::detail {

class ThreadLease {
 public:
  ThreadLease();  // may wait until a thread of the budget is free
  ~ThreadLease();
  ThreadLease(const ThreadLease&) = delete;
  ThreadLease& operator=(const ThreadLease&) = delete;
  void rebalance();  // gives back above the fair share, takes up to it when threads are free
  int threads() const { return threads_; }

 private:
  void apply() const;
  int threads_ = 0, previous_ = 0;
  bool nested_ = false;  // an API call inside another on the same thread: the outer lease rules
};

}  // namespace varcode::detail
