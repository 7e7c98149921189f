#include "telemetry/cumulative_counter.h"

namespace wafer::telemetry {

uint64_t CumulativeCounter::Observe(uint64_t reading) {
  const uint64_t added = (!seen_ || reading < last_) ? reading : reading - last_;
  seen_ = true;
  last_ = reading;
  if (added > 0) counter_->Increment(static_cast<double>(added));
  return added;
}

}  // namespace wafer::telemetry
