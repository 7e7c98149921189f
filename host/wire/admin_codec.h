// The admin protocol's codec: plain structs <-> admin.fbs buffers.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "host/wire/messages.h"

namespace wafer::host {

// Encodes `message` in an AdminEnvelope with this build's protocol version. Thread-safe.
std::string EncodeAdmin(const AdminMessage& message);

// Same contract as DecodeJob, for admin frames. The job requests are also checked against
// their bounds here: a ListJobs with a state that is no JobStateFilter, a tenant longer than
// kMaxJobTenantFilterBytes or a limit above kMaxJobListLimit, and a ShowJob or CancelJobRequest
// with job_id 0, fail with kInvalidArgument, a detail that names the field ("ListJobs.limit:
// ...") and `error->request_tag` set.
bool DecodeAdmin(std::span<const std::byte> frame, AdminMessage* out, DecodeError* error);

}  // namespace wafer::host
