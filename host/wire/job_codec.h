// The job protocol's codec: plain structs <-> job.fbs buffers. The only host file (with the
// client's use of it) that sees the generated job schema.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "host/wire/messages.h"

namespace wafer::host {

// Encodes `message` in a JobEnvelope with this build's protocol version. Thread-safe.
std::string EncodeJob(const JobMessage& message);

// The same, without a copy: the bytes live in a thread-local builder and stay valid until the
// next EncodeJob or EncodeJobView on this thread. For hot paths that copy into a socket.
std::span<const std::byte> EncodeJobView(const JobMessage& message);

// Verifies and decodes one received frame. The frame may be unaligned; it is copied first.
// Returns false and fills `error` (kMalformedMessage: truncated, garbage, wrong identifier or
// missing fields; kUnsupportedVersion: another major version; kWrongMessageType: empty union).
// Thread-safe.
bool DecodeJob(std::span<const std::byte> frame, JobMessage* out, DecodeError* error);

}  // namespace wafer::host
