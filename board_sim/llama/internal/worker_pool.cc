#include "board_sim/llama/internal/worker_pool.h"

#include <system_error>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace wafer::sim::internal {
namespace {

// How long a waiting thread polls before it blocks: long enough to bridge the gap between two
// matrix products of one step (norms, rotary, attention), short enough not to burn a core while
// the engine is idle.
constexpr int kSpins = 20000;

inline void CpuRelax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

inline uint32_t Generation(uint64_t ticket) { return static_cast<uint32_t>(ticket >> 32); }

}  // namespace

WorkerPool::WorkerPool(size_t helpers) {
  for (size_t i = 0; i < helpers; ++i) {
    try {
      helpers_.emplace_back([this] { HelperLoop(); });
    } catch (const std::system_error&) {
      break;  // Run with the helpers we have.
    }
  }
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
  }
  wake_.notify_all();
  for (std::thread& t : helpers_) t.join();
}

void WorkerPool::Run(size_t parts, const std::function<void(size_t)>& fn) {
  if (parts == 0) return;
  if (helpers_.empty() || parts == 1) {
    for (size_t p = 0; p < parts; ++p) fn(p);
    return;
  }
  // First close the previous generation (next part = UINT32_MAX, never claimable), so that a
  // helper still looking at it cannot claim against the new parts_ before the new generation is
  // published. A helper that sees the new parts_ (acquire) also sees the close, and its
  // compare-exchange on the old ticket fails.
  const uint64_t generation = ticket_.load(std::memory_order_relaxed) >> 32;
  ticket_.store((generation << 32) | 0xffffffffu, std::memory_order_relaxed);
  fn_.store(&fn, std::memory_order_relaxed);
  finished_.store(0, std::memory_order_relaxed);
  parts_.store(static_cast<uint32_t>(parts), std::memory_order_release);
  {
    // Publish: a helper that sees the new generation (acquire on ticket_) sees fn_ and parts_.
    std::lock_guard<std::mutex> lock(mu_);
    ticket_.store((generation + 1) << 32, std::memory_order_release);
  }
  wake_.notify_all();
  Work();
  const auto all_done = [&] {
    return finished_.load(std::memory_order_acquire) == static_cast<uint32_t>(parts);
  };
  for (int i = 0; i < kSpins && !all_done(); ++i) CpuRelax();
  if (!all_done()) {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, all_done);
  }
}

void WorkerPool::Work() {
  // Parts this thread ran, reported to finished_ once when it finds none left: one contended
  // read-modify-write per thread and Run() instead of one per part.
  uint32_t ran = 0;
  uint32_t total = 0;
  uint64_t ticket = ticket_.load(std::memory_order_acquire);
  for (;;) {
    const uint32_t part = static_cast<uint32_t>(ticket);
    if (part >= parts_.load(std::memory_order_acquire)) break;
    if (!ticket_.compare_exchange_weak(ticket, ticket + 1, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
      continue;  // `ticket` now holds the current value; re-check it.
    }
    // The claim succeeded in the current generation, whose caller is still waiting for this part
    // (it waits for every claimed part to be reported), so fn_ and parts_ belong to it.
    (*fn_.load(std::memory_order_relaxed))(part);
    total = parts_.load(std::memory_order_relaxed);
    ++ran;
    ticket = ticket_.load(std::memory_order_acquire);
  }
  if (ran > 0 && finished_.fetch_add(ran, std::memory_order_acq_rel) + ran == total) {
    std::lock_guard<std::mutex> lock(mu_);  // Pairs with the caller's predicate check.
    done_.notify_one();
  }
}

void WorkerPool::HelperLoop() {
  uint32_t seen = 0;
  for (;;) {
    const auto ready = [&] {
      return stop_.load(std::memory_order_acquire) ||
             Generation(ticket_.load(std::memory_order_acquire)) != seen;
    };
    for (int i = 0; i < kSpins && !ready(); ++i) CpuRelax();
    if (!ready()) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, ready);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = Generation(ticket_.load(std::memory_order_acquire));
    Work();
  }
}

}  // namespace wafer::sim::internal
