// A Prometheus counter fed from a device's cumulative count. A board reports its ECC and link
// CRC errors as totals since it last powered up or reset, so the total drops to 0 (or near it)
// after a reset; a Prometheus counter must only go up, with resets reserved for the exporter's
// own restart. CumulativeCounter adds the increase since the previous reading and treats a drop
// as a device restart: the new reading is all new errors.
#pragma once

#include <cstdint>

#include <prometheus/counter.h>

namespace wafer::telemetry {

// Not thread-safe: one reader feeds it (waferd's step loop). The counter itself may be scraped
// from any thread.
class CumulativeCounter {
 public:
  // REQUIRES: `counter` outlives this object.
  explicit CumulativeCounter(prometheus::Counter& counter) : counter_(&counter) {}

  // Records the device's latest total and returns what it added to the counter:
  //   - the first reading in full (the errors the device counted before this process read it;
  //     Prometheus's rate() ignores a counter's starting value, an operator sees the total),
  //   - reading - previous when the total grew or held,
  //   - the reading in full when it dropped (the device restarted its count).
  // A device that restarts and counts past its previous total before the next reading is not
  // recognisable as restarted: the errors of the earlier life after the last reading and
  // part of the new life's are lost (undercounted, never overcounted).
  uint64_t Observe(uint64_t reading);

  // The last reading, or 0 before the first.
  uint64_t last() const { return last_; }

 private:
  prometheus::Counter* counter_;
  bool seen_ = false;
  uint64_t last_ = 0;
};

}  // namespace wafer::telemetry
