// The job protocol's codec: plain structs <-> job.fbs buffers. The only host file (with the
// client's use of it) that sees the generated job schema.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "common/error.h"
#include "host/wire/messages.h"

namespace wafer::host {

// Encodes `message` in a JobEnvelope with this build's protocol version. Thread-safe.
std::string EncodeJob(const JobMessage& message);

// The same, without a copy: the bytes live in a thread-local builder and stay valid until the
// next EncodeJob or EncodeJobView on this thread. For hot paths that copy into a socket.
std::span<const std::byte> EncodeJobView(const JobMessage& message);

// Verifies and decodes one received frame. The frame may be unaligned; it is copied first.
// `*request_tag` (may be null) is set to the request's tag when it could be read, 0 otherwise,
// so that a refusal can answer the request it refuses. Thread-safe.
// Returns (the wire code each stands for, see DecodeErrorWireCode, in parentheses):
//   OK                  - the message.
//   DATA_LOSS           - (kMalformedMessage) truncated, garbage, wrong identifier or missing
//                         fields.
//   FAILED_PRECONDITION - (kUnsupportedVersion) another major version.
//   UNIMPLEMENTED       - (kWrongMessageType) an empty union.
HostResult<JobMessage> DecodeJob(std::span<const std::byte> frame, uint64_t* request_tag = nullptr);

}  // namespace wafer::host
