// The checks every received job- or admin-socket buffer passes before any field is read, shared
// by the two codecs: size, an aligned copy (ZeroMQ frames are often unaligned), file
// identifier, flatbuffers::Verifier, protocol version, and a union table present for its type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "common/error.h"
#include "host/wire/messages.h"

namespace wafer::host {

// Copies `frame` into a thread-local, 8-byte aligned buffer; the view stays valid until the
// next AlignedCopy on the same thread.
inline std::span<const uint8_t> AlignedCopy(std::span<const std::byte> frame) {
  thread_local std::vector<uint64_t> buffer;
  buffer.resize(frame.size() / 8 + 1);
  if (!frame.empty()) std::memcpy(buffer.data(), frame.data(), frame.size());
  return {reinterpret_cast<const uint8_t*>(buffer.data()), frame.size()};
}

// The generated functions of one root type, e.g.
// {JobEnvelopeBufferHasIdentifier, VerifyJobEnvelopeBuffer, GetJobEnvelope, "WJOB"}.
template <typename Envelope>
struct EnvelopeSchema {
  bool (*has_identifier)(const void*);
  bool (*verify)(flatbuffers::Verifier&);
  const Envelope* (*get)(const void*);
  const char* identifier;
};

// Returns the verified envelope (valid until the next AlignedCopy on this thread), or nullptr
// with `error` set: the codes of kMalformedMessage or kUnsupportedVersion (DecodeErrorStatus).
template <typename Envelope>
const Envelope* OpenEnvelope(std::span<const std::byte> frame, const EnvelopeSchema<Envelope>& schema,
                             Error* error) {
  auto fail = [&](ErrorCode code, std::string detail) -> const Envelope* {
    *error = Error{DecodeErrorStatus(code), std::move(detail)};
    return nullptr;
  };
  if (frame.size() < 8) return fail(ErrorCode::kMalformedMessage, "message shorter than 8 bytes");
  std::span<const uint8_t> bytes = AlignedCopy(frame);
  if (!schema.has_identifier(bytes.data())) {
    return fail(ErrorCode::kMalformedMessage,
                std::string("wrong file identifier (want ") + schema.identifier + ")");
  }
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), /*max_depth=*/32,
                                 /*max_tables=*/100000);
  if (!schema.verify(verifier)) {
    return fail(ErrorCode::kMalformedMessage, "buffer failed FlatBuffers verification");
  }
  const Envelope* env = schema.get(bytes.data());
  if (env->version() == nullptr) return fail(ErrorCode::kMalformedMessage, "missing version");
  if (env->version()->major() != kProtocolMajor) {
    return fail(ErrorCode::kUnsupportedVersion,
                "protocol major version " + std::to_string(env->version()->major()) +
                    " not supported (this daemon speaks " + std::to_string(kProtocolMajor) + ")");
  }
  // A union may carry its type without its table; the typed accessors would then return null.
  if (static_cast<int>(env->message_type()) != 0 && env->message() == nullptr) {
    return fail(ErrorCode::kMalformedMessage, "message type without a message");
  }
  return env;
}

// A codec's public decoder over its decoder proper, `decode_into(frame, &message, &error, &tag)`,
// which returns false with `error` set (a DecodeErrorStatus code) and sets `tag` as soon as it
// has read the request's. Returns the message or that Error; `*request_tag` (may be null) gets
// the tag, 0 when none was read.
template <typename Message, typename DecodeInto>
HostResult<Message> DecodeFrame(std::span<const std::byte> frame, uint64_t* request_tag,
                                DecodeInto decode_into) {
  uint64_t tag = 0;
  Message message;
  Error error;
  const bool decoded = decode_into(frame, &message, &error, &tag);
  if (request_tag != nullptr) *request_tag = tag;
  if (!decoded) return error;
  return message;
}

}  // namespace wafer::host
