// The admin protocol's codec: plain structs <-> admin.fbs buffers.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "host/wire/messages.h"

namespace wafer::host {

// Encodes `message` in an AdminEnvelope with this build's protocol version. Thread-safe.
std::string EncodeAdmin(const AdminMessage& message);

// Same contract as DecodeJob, for admin frames.
bool DecodeAdmin(std::span<const std::byte> frame, AdminMessage* out, DecodeError* error);

}  // namespace wafer::host
