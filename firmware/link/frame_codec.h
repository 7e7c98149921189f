// The firmware side of board.fbs: verifies and decodes command frames into fw::Command and
// encodes fw::Reply into reply frames. The only firmware file that sees the generated schema.
#pragma once

#include <array>
#include <cstddef>
#include <span>

#include <flatbuffers/flatbuffers.h>

#include "common/fixed_vector.h"
#include "firmware/command.h"

namespace wafer::fw {

// Not thread-safe; owned by the superloop. The builder reserves its buffer in the constructor
// and reuses it, so steady-state encoding does not allocate for replies that fit.
class FrameCodec {
 public:
  FrameCodec();

  // Verifies `frame` (8-byte aligned, complete) and decodes it into `cmd`, whose spans then point
  // into `frame` and into this codec until the next Decode. On a bad frame returns false and
  // fills `error` as a kError reply: kMalformedMessage (size, identifier, verifier, missing
  // field), kUnsupportedVersion (major != 1), kWrongMessageType (not a command),
  // kInvalidArgument (a field out of bounds).
  bool Decode(std::span<const std::byte> frame, Command& cmd, Reply& error);
  // The same for a frame that came with an attachment (the message's second frame: the bytes of
  // a WriteWeights that names its attached_size), which `cmd` then points into. Only a
  // WriteWeights with attached_size equal to attachment.size() takes one; any other frame with a
  // non-empty attachment, and such a WriteWeights without one, is kInvalidArgument.
  bool Decode(std::span<const std::byte> frame, std::span<const std::byte> attachment,
              Command& cmd, Reply& error);

  // Encodes `reply`; the bytes stay valid until the next Encode.
  std::span<const std::byte> Encode(const Reply& reply);

 private:
  FixedVector<hal::TensorSpec, kMaxTensors> tensors_;
  FixedVector<hal::KvRegion, kMaxKvRegions> kv_regions_;
  std::array<hal::SeqStepView, kMaxSeqsPerStep> seqs_{};
  flatbuffers::FlatBufferBuilder fbb_;
};

}  // namespace wafer::fw
