// A small persistent thread pool for the functional Llama kernels: one parallel-for at a time,
// with the calling thread taking part, so a matrix product pays a wake-up, not a thread creation.
// Private to board_sim/llama.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wafer::sim::internal {

// Run() may be called from one thread at a time (the engine's owner); the helpers are private.
// Destruction stops and joins the helpers.
class WorkerPool {
 public:
  // Starts up to `helpers` threads. If the system refuses a thread, the pool runs with fewer and
  // Run() does the rest of the work on the caller; with none it is a plain loop.
  explicit WorkerPool(size_t helpers);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Threads that take part in Run(): the helpers plus the caller.
  size_t parallelism() const { return helpers_.size() + 1; }

  // Calls fn(part) exactly once for every part < parts, spread over the caller and the helpers
  // (parts are claimed dynamically, so a helper that wakes late simply takes fewer). Returns when
  // every call has returned. REQUIRES: parts < 2^32; fn does not call Run().
  void Run(size_t parts, const std::function<void(size_t)>& fn);

 private:
  void HelperLoop();
  // Claims and runs parts of the current generation until none is left.
  void Work();

  // ticket_ and finished_ are written by every thread, so each has a cache line to itself.
  // ticket_: (generation << 32) | next unclaimed part. A claim is a compare-exchange on the whole
  // word, so a helper that still holds an old generation can never claim a part of a newer one.
  alignas(64) std::atomic<uint64_t> ticket_{0};
  // Parts of the current generation that have run (each thread adds its count once).
  alignas(64) std::atomic<uint32_t> finished_{0};
  alignas(64) std::atomic<uint32_t> parts_{0};
  std::atomic<const std::function<void(size_t)>*> fn_{nullptr};
  std::atomic<bool> stop_{false};

  std::mutex mu_;
  std::condition_variable wake_;  // Helpers: a new generation or stop.
  std::condition_variable done_;  // Caller: finished_ reached parts_.
  std::vector<std::thread> helpers_;
};

}  // namespace wafer::sim::internal
