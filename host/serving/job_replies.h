// Where messages to job clients go: the job front end, which owns the job socket. The step loop
// streams TokenChunks and JobFinished through it.
#pragma once

#include <string>

#include "host/wire/messages.h"

namespace wafer::host {

// Not thread-safe; used on the step loop's thread.
class JobReplies {
 public:
  virtual ~JobReplies() = default;
  // Sends without blocking; a peer that is gone or backlogged loses the message (counted), and
  // ResumeStream replays a job's chunks. By value: the front end stamps it before encoding, and
  // a temporary (every chunk) is moved in, not copied.
  virtual void Send(const std::string& peer, JobMessage message) = 0;
  // The same for a message the caller keeps and fills again for its next send (every chunk of
  // a Step's results), so that its buffers keep their capacity: stamped in place, not copied.
  virtual void SendInPlace(const std::string& peer, JobMessage& message) = 0;
};

}  // namespace wafer::host
