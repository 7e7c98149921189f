// The admin protocol's codec: plain structs <-> admin.fbs buffers.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "common/error.h"
#include "host/wire/messages.h"

namespace wafer::host {

// Encodes `message` in an AdminEnvelope with this build's protocol version. Thread-safe.
std::string EncodeAdmin(const AdminMessage& message);

// Same contract as DecodeJob, for admin frames. The job requests are also checked against
// their bounds here: a ListJobs with a state that is no JobStateFilter, a tenant longer than
// kMaxJobTenantFilterBytes or a limit above kMaxJobListLimit, and a ShowJob or CancelJobRequest
// with job_id 0, fail with INVALID_ARGUMENT (kInvalidArgument), a message that names the field
// ("ListJobs.limit: ...") and `*request_tag` set.
HostResult<AdminMessage> DecodeAdmin(std::span<const std::byte> frame,
                                     uint64_t* request_tag = nullptr);

}  // namespace wafer::host
