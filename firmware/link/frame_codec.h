// The firmware side of board.fbs: verifies and decodes command frames into fw::Command and
// encodes fw::Reply into reply frames. The only firmware file that sees the generated schema.
#pragma once

#include <array>
#include <cstddef>
#include <span>

#include <flatbuffers/flatbuffers.h>

#include "common/fixed_vector.h"
#include "firmware/command.h"
#include "firmware/link/arena_allocator.h"

namespace wafer::fw {

// An upper bound of the bytes a FlatBufferBuilder needs to encode `reply` (see fb_bound).
size_t ReplySizeBound(const Reply& reply);

// Encodes `reply` with `fbb` (cleared first); the bytes stay valid until fbb's next use. Does not
// check the bound: REQUIRES fbb to have room for ReplySizeBound(reply) bytes. FrameCodec::Encode
// is the checked form; this one is public so that tests can build each reply in an arena of
// exactly its bound.
std::span<const std::byte> EncodeReply(flatbuffers::FlatBufferBuilder& fbb, const Reply& reply);

// Not thread-safe; owned by the superloop. Large (its reply arena holds one maximal frame,
// kMaxFrameBytes): allocate it once at init. Neither decoding nor encoding allocates.
class FrameCodec {
 public:
  FrameCodec();
  FrameCodec(const FrameCodec&) = delete;
  FrameCodec& operator=(const FrameCodec&) = delete;

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

  // Encodes `reply`; the bytes stay valid until the next Encode. A reply whose bound exceeds
  // the arena (it could not be sent as one frame) is answered instead with an Ack of
  // RESOURCE_EXHAUSTED for the same command, and counted in replies_exhausted().
  std::span<const std::byte> Encode(const Reply& reply);

  // Replies Encode replaced with RESOURCE_EXHAUSTED because they did not fit the arena.
  uint64_t replies_exhausted() const { return replies_exhausted_; }

 private:
  FixedVector<hal::TensorSpec, kMaxTensors> tensors_;
  FixedVector<hal::KvRegion, kMaxKvRegions> kv_regions_;
  std::array<hal::SeqStepView, kMaxSeqsPerStep> seqs_{};
  uint64_t replies_exhausted_ = 0;
  // The builder's only memory: declared before it, so it outlives it.
  alignas(8) std::array<std::byte, kMaxFrameBytes> arena_{};
  ArenaAllocator allocator_;
  flatbuffers::FlatBufferBuilder fbb_;
};

}  // namespace wafer::fw
