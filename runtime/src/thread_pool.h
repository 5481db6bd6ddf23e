// A persistent worker pool for the binary convolutions: created once per
// process on first use (not per invoke), grown to the largest thread count
// asked for. TFLite gives custom ops no pool of its own, and starting and
// joining std::threads on every invoke costs more than a small layer.
#ifndef BITLITE_THREAD_POOL_H_
#define BITLITE_THREAD_POOL_H_

#include <algorithm>

namespace bitlite {

using TaskFn = void (*)(void* ctx, int task);

// Runs fn(ctx, 0 .. n_tasks-1), spread over the calling thread and up to
// `threads - 1` pool workers; returns once all tasks are done. Of T threads, thread
// i (0: the caller) runs tasks [i*n/T, (i+1)*n/T) first, then helps with the others'
// (so list tasks so that neighbours share data). Never throws:
// when workers cannot be started, or another thread is using the pool, the
// caller runs every task itself (same result, one thread).
void ParallelFor(int threads, int n_tasks, TaskFn fn, void* ctx);

// Starts the workers `threads` needs now (at prepare), so that ParallelFor then
// creates no thread and allocates nothing. False if they could not all be started
// (ParallelFor then runs serially or with the workers it has). Never throws.
bool ReserveThreads(int threads);

// For tests: while set, starting a worker fails as std::thread does when the system
// has no more threads (std::system_error).
void SetThreadStartFailsForTesting(bool fails);

// For tests: how many ParallelFor calls have run on the pool (more than one thread).
long PoolJobsForTesting();

// fn(part, begin, end) over [0, total) in at most `threads` contiguous parts of at
// least `min_per_part` each, part i on ParallelFor's thread i (the caller takes part 0,
// as XNNPACK's pool does, so an op after an XNNPACK op mostly reads what its own core
// wrote); one part runs here, without the pool. `fn` must not throw.
template <class Fn>
void ParallelRanges(int threads, long total, long min_per_part, const Fn& fn) {
  if (total <= 0) return;
  const long parts = std::min<long>(threads, total / std::max<long>(1, min_per_part));
  if (parts <= 1) {
    fn(0, 0L, total);
    return;
  }
  struct Ctx {
    const Fn* fn;
    long total, parts;
  } ctx{&fn, total, parts};
  ParallelFor(static_cast<int>(parts), static_cast<int>(parts), [](void* c, int t) {
    const Ctx& x = *static_cast<const Ctx*>(c);
    (*x.fn)(t, x.total * t / x.parts, x.total * (t + 1) / x.parts);
  }, &ctx);
}

}  // namespace bitlite

#endif  // BITLITE_THREAD_POOL_H_
