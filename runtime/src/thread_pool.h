// A persistent worker pool for the binary convolutions: created once per
// process on first use (not per invoke), grown to the largest thread count
// asked for. TFLite gives custom ops no pool of its own, and starting and
// joining std::threads on every invoke costs more than a small layer.
#ifndef BITLITE_THREAD_POOL_H_
#define BITLITE_THREAD_POOL_H_

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

}  // namespace bitlite

#endif  // BITLITE_THREAD_POOL_H_
