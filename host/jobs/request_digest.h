// What makes a retried submission "the same request" for its idempotency key: the fields that
// decide the job's output (model, prompt, max_tokens, sampling, stop tokens, want_text). The
// scheduling hints (priority, deadline, TTFT target) may differ between retries: a retry may
// carry a recomputed deadline and still be the same job.
#pragma once

#include <string>

#include "host/wire/messages.h"

namespace wafer::host {

// A 16-byte BLAKE2b digest of those fields, each length-prefixed (no two requests share one
// unless BLAKE2b collides).
std::string RequestDigestOf(const SubmitJob& submit);

}  // namespace wafer::host
