#include "thread_pool.h"

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace bitlite {
namespace {

constexpr int kMaxWorkers = 63;
// Workers spin this long after a job before sleeping: consecutive layers of one
// invoke then start without a futex wake-up.
constexpr auto kSpin = std::chrono::microseconds(200);

std::atomic<bool> g_start_fails{false};  // SetThreadStartFailsForTesting
std::atomic<long> g_pool_jobs{0};         // PoolJobsForTesting

// Yields until done() or kSpin has passed: both sides of a job wait so before sleeping.
template <class Done>
void SpinUntil(Done done) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  while (!done() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
}

class Pool {
 public:
  // False when the pool is busy or cannot start workers: the caller runs serially.
  bool Run(int threads, int n_tasks, TaskFn fn, void* ctx) {
    std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
    if (!busy.owns_lock()) return false;  // in use by another interpreter: run serially
    const int want = threads - 1 < kMaxWorkers ? threads - 1 : kMaxWorkers;
    // Fewer workers than asked (some could not start): the ones there are share the job.
    const int have = Grow(want);
    if (have == 0) return false;
    const int parts = (have < want ? have : want) + 1;  // the caller and the workers
    unsigned long gen;
    {
      std::lock_guard<std::mutex> l(mu_);
      fn_ = fn;
      ctx_ = ctx;
      n_tasks_ = n_tasks;
      parts_ = parts;
      remaining_.store(n_tasks, std::memory_order_relaxed);
      active_ = parts - 1;
      gen = generation_.load(std::memory_order_relaxed) + 1;
      const uint64_t tag = static_cast<uint64_t>(gen & 0xffffffffu) << 32;
      for (int r = 0; r < parts; ++r)
        ranges_[r].claim.store(tag | static_cast<uint64_t>(RangeBegin(r, parts, n_tasks)),
                               std::memory_order_relaxed);
      generation_.store(gen, std::memory_order_release);
    }
    cv_.notify_all();
    Work(gen, fn, ctx, n_tasks, parts, 0);
    // Wait for the others' tasks (the caller's own are done): spin first, as the
    // workers do, since tasks end close together and a futex sleep and wake-up costs
    // tens of microseconds in a VM; then sleep on the condition variable.
    SpinUntil([&] { return remaining_.load(std::memory_order_acquire) == 0; });
    while (remaining_.load(std::memory_order_acquire) != 0) {
      std::unique_lock<std::mutex> l(mu_);
      done_cv_.wait_for(l, std::chrono::microseconds(50),
                        [&] { return remaining_.load(std::memory_order_acquire) == 0; });
    }
    return true;
  }

  // Starts workers up to `threads - 1` (capped); true if there are that many now.
  bool Reserve(int threads) {
    std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
    if (!busy.owns_lock()) return false;  // a job is running: it grows the pool itself
    const int want = threads - 1 < kMaxWorkers ? threads - 1 : kMaxWorkers;
    return Grow(want) >= want;
  }

 private:
  // Starts workers until there are `want`; returns how many there are (fewer when
  // the system refuses a thread).
  int Grow(int want) {
    const pid_t pid = getpid();
    if (pid != pid_) {  // forked child: the parent's workers do not exist here
      workers_.clear();  // (their std::thread objects are leaked, not joined)
      pid_ = pid;
    }
    try {
      workers_.reserve(kMaxWorkers);  // once: later growth does not reallocate
      while (static_cast<int>(workers_.size()) < want) {
        const int index = static_cast<int>(workers_.size());
        if (g_start_fails.load())
          throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
        std::unique_ptr<std::thread> t(new std::thread([this, index] { Loop(index); }));
        t->detach();
        workers_.push_back(t.release());
      }
    } catch (...) {  // std::system_error (no more threads) or bad_alloc
    }
    return static_cast<int>(workers_.size()) < want ? static_cast<int>(workers_.size()) : want;
  }

  // Task range of participant r of `parts` (0: the caller, 1 + i: worker i).
  static int RangeBegin(int r, int parts, int n_tasks) {
    return static_cast<int>(static_cast<long long>(n_tasks) * r / parts);
  }

  // Runs participant `self`'s own contiguous range of tasks first, then takes what is
  // left of the others' ranges (a late or descheduled thread's tasks get done by the
  // rest). Own ranges first: the same thread (and so, mostly, the same core) runs the
  // same part of every job, so consecutive layers find their filters and their part of
  // the activations in that core's cache, and nearby jobs of another pool that split
  // the same way (XNNPACK's pthreadpool gives its caller the first range too) leave
  // the data where its reader runs. Claims of job `gen` only: each range's claim word
  // carries the job's generation, so a worker that wakes late never takes a task of
  // the next job with this job's function.
  void Work(unsigned long gen, TaskFn fn, void* ctx, int n_tasks, int parts, int self) {
    const uint64_t tag = static_cast<uint64_t>(gen & 0xffffffffu) << 32;
    for (int k = 0; k < parts; ++k) {
      const int r = (self + k) % parts;
      const int end = RangeBegin(r + 1, parts, n_tasks);
      std::atomic<uint64_t>& claim = ranges_[r].claim;
      uint64_t c = claim.load(std::memory_order_acquire);
      for (;;) {
        if ((c & ~0xffffffffull) != tag) return;  // a later job has begun: this one is done
        const int t = static_cast<int>(c & 0xffffffffu);
        if (t >= end) break;  // range done: help with the next one
        if (!claim.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) continue;
        fn(ctx, t);
        c = claim.load(std::memory_order_acquire);
        if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          std::lock_guard<std::mutex> l(mu_);
          done_cv_.notify_all();
        }
      }
    }
  }

  void Loop(int index) {
    unsigned long seen = generation_.load(std::memory_order_acquire);
    for (;;) {
      SpinUntil([&] { return generation_.load(std::memory_order_acquire) != seen; });
      TaskFn fn;
      void* ctx;
      int n_tasks, parts;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        seen = generation_.load(std::memory_order_acquire);
        if (index >= active_) continue;  // not needed for this job
        fn = fn_, ctx = ctx_, n_tasks = n_tasks_, parts = parts_;
      }
      Work(seen, fn, ctx, n_tasks, parts, index + 1);
    }
  }

  std::mutex run_mu_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread*> workers_;
  pid_t pid_ = getpid();
  std::atomic<unsigned long> generation_{0};
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int n_tasks_ = 0;
  int active_ = 0;
  int parts_ = 0;  // threads of the current job: the caller and active_ workers
  struct alignas(64) Range {  // own cache line: the threads claim apart
    std::atomic<uint64_t> claim{0};  // generation << 32 | next task of this range
  };
  Range ranges_[kMaxWorkers + 1];
  std::atomic<int> remaining_{0};
};

Pool* GetPool() {
  // Never destroyed: detached workers may still sleep in it at process exit.
  static Pool* pool = new Pool;
  return pool;
}

}  // namespace

void ParallelFor(int threads, int n_tasks, TaskFn fn, void* ctx) {
  if (threads > 1 && n_tasks > 1) {
    Pool* pool = nullptr;
    try {
      pool = GetPool();
    } catch (...) {  // bad_alloc creating it: run serially
    }
    if (pool != nullptr && pool->Run(threads, n_tasks, fn, ctx)) {
      g_pool_jobs.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  for (int t = 0; t < n_tasks; ++t) fn(ctx, t);
}

bool ReserveThreads(int threads) {
  if (threads <= 1) return true;
  try {
    return GetPool()->Reserve(threads);
  } catch (...) {  // bad_alloc creating the pool
    return false;
  }
}

void SetThreadStartFailsForTesting(bool fails) { g_start_fails.store(fails); }

long PoolJobsForTesting() { return g_pool_jobs.load(); }

}  // namespace bitlite
