// Where the outcome and progress of an admin operation go: the admin front end, which answers
// the client that asked. Operations started by the config file or by a reload have no client
// (an empty peer) and are not reported.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "host/wire/messages.h"

namespace wafer::host {

// Not thread-safe; used on the step loop's thread.
class OperationSink {
 public:
  virtual ~OperationSink() = default;
  virtual void FinishOperation(const std::string& peer, uint64_t tag, Status status,
                               const std::string& detail, double elapsed_s) = 0;
  virtual void SendProgress(const std::string& peer, const LoadProgress& progress) = 0;
};

}  // namespace wafer::host
