#include "firmware/bare_metal/board_wafer.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "firmware/bare_metal/board_map.h"

// Request and response layouts. Every field is little-endian and padded to 4 bytes. Scalars and
// the plain HAL structs (ModelArch, ModelStage, PeRect, KvRegion, Sampling, DeviceTime,
// SensorReadout, PhysicalGeometry, HwEvent, DiagHit, DiagRun, PeContents, FaultSpec) travel as
// laid out in memory: the management core is an ARM core built with the same ABI. An array is a
// u32 count followed by its elements; a string is an array of chars.
//
//   kInfo           -> physical_pes u64, fabric_width, fabric_height, sram_per_pe, clock_hz f64,
//                      max_slots, warn_c f32, critical_c f32, board_id string, preset string
//   kSelfTest, kCommitModel(model), kUnloadModel(model), kPowerCycle, kHalt,
//   kRemapPe(row, col), kRetirePe(row, col)             -> nothing
//   kBeginModel     model_id, name, ModelArch, slots, context_length, shape_only, ModelStage,
//                   tensors: count, then each: name, role, layer, dtype, rank, shape[4] u64,
//                   byte_size u64, PeRect; kv_regions: KvRegion array -> nothing
//   kWriteTensor    model_id, tensor_index, offset u64, bytes array -> nothing
//   kRunStep        model_id, from_stage, count, then each seq: slot, reset, generate, Sampling,
//                   sampled_before u32, input tokens, stop tokens, hidden_in, token capacity, hidden capacity
//                   -> DeviceTime, then each seq: code, context_tokens, tokens, hidden values
//   kReadSensors    -> SensorReadout
//   kGeometry       -> PhysicalGeometry
//   kReadRowFuses   row -> defects
//   kProgramHarvest row_map array -> nothing
//   kContentsOfPe   row, col, capacity -> PeContents, tensor indices array
//   kPollEvents     capacity -> HwEvent array
//   kTestSram       first_row, row_count, unused_only, capacity -> DiagRun, DiagHit array
//   kTestFabricLinks first_row, row_count, capacity -> DiagRun, DiagHit array
//   kRunKnownAnswer region -> answer u64, pes u64, device_ns i64

namespace wafer::fw::board {
namespace {

constexpr size_t Padded(size_t n) { return (n + 3) & ~size_t{3}; }

}  // namespace

// Writes a request into the request window; remembers an overflow instead of writing past it.
class BoardWafer::Request {
 public:
  template <typename T>
  void Put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    PutBytes(std::as_bytes(std::span<const T>(&value, 1)));
  }
  template <typename T>
  void PutArray(std::span<const T> values) {
    Put(static_cast<uint32_t>(values.size()));
    PutBytes(std::as_bytes(values));
  }
  void PutBytes(std::span<const std::byte> bytes) {
    if (overflow_ || Padded(bytes.size()) > kWaferWindowBytes - size_) {
      overflow_ = true;
      return;
    }
    std::memcpy(reinterpret_cast<std::byte*>(kWaferRequestWindow) + size_, bytes.data(),
                bytes.size());
    size_ += Padded(bytes.size());
  }
  size_t size() const { return size_; }
  bool overflow() const { return overflow_; }

 private:
  size_t size_ = 0;
  bool overflow_ = false;
};

// Reads a response from the response window; every read checks the response's length.
class BoardWafer::Response {
 public:
  void set_length(size_t length) { length_ = std::min(length, kWaferWindowBytes); }
  template <typename T>
  [[nodiscard]] bool Get(T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    return GetBytes(std::as_writable_bytes(std::span<T>(&value, 1)));
  }
  // An array of at most out.size() elements; its count goes to `count`.
  template <typename T>
  [[nodiscard]] bool GetArray(std::span<T> out, uint32_t& count) {
    if (!Get(count) || count > out.size()) return false;
    return GetBytes(std::as_writable_bytes(out.first(count)));
  }
  [[nodiscard]] bool GetBytes(std::span<std::byte> out) {
    if (Padded(out.size()) > length_ - at_) return false;
    std::memcpy(out.data(), reinterpret_cast<const std::byte*>(kWaferResponseWindow) + at_,
                out.size());
    at_ += Padded(out.size());
    return true;
  }

 private:
  size_t length_ = 0;
  size_t at_ = 0;
};

BoardWafer::BoardWafer() : regs_(kWaferMailboxBase) {}

Status BoardWafer::Call(WaferOp op, const Request& request, Response& response) const {
  if (request.overflow()) return ResourceExhausted();
  MemoryBarrier();  // The request is in SDRAM before the doorbell.
  regs_.Write<wafer_mailbox::kRequestLength>(static_cast<uint32_t>(request.size()));
  regs_.Write<wafer_mailbox::kDoorbell>(static_cast<uint32_t>(op));
  const bool done = SpinUntil(
      [&] { return (regs_.Read<wafer_mailbox::kStatus>() & wafer_mailbox::kStatusBusy) == 0; },
      kTimeoutSpins);
  if (!done) return Unavailable();
  MemoryBarrier();  // The response is read after the status that announced it.
  const uint32_t result = regs_.Read<wafer_mailbox::kResult>();
  response.set_length(regs_.Read<wafer_mailbox::kResponseLength>());
  // Values read off the mailbox are checked like values read off the wire.
  if (result > static_cast<uint32_t>(StatusCode::kUnauthenticated)) return Internal();
  return Status(static_cast<StatusCode>(result));
}

Status BoardWafer::Simple(WaferOp op, uint32_t a, uint32_t b) const {
  Request request;
  request.Put(a);
  request.Put(b);
  Response response;
  return Call(op, request, response);
}

Status BoardWafer::Init() {
  Request request;
  Response response;
  if (Status s = Call(WaferOp::kInfo, request, response); !s.ok()) return s;
  hal::WaferInfo info;
  uint32_t length = 0;
  const bool ok = response.Get(info.physical_pes) && response.Get(info.fabric_width) &&
                  response.Get(info.fabric_height) && response.Get(info.sram_per_pe) &&
                  response.Get(info.clock_hz) && response.Get(info.max_slots) &&
                  response.Get(info.warn_c) && response.Get(info.critical_c) &&
                  response.GetArray(std::span(board_id_).first(board_id_.size() - 1), length) &&
                  response.GetArray(std::span(preset_).first(preset_.size() - 1), length);
  if (!ok) return Internal();
  info.board_id = board_id_.data();  // NUL-terminated: the arrays' last byte stays 0.
  info.preset = preset_.data();
  info_ = info;
  return OkStatus();
}

Status BoardWafer::SelfTest() { return Simple(WaferOp::kSelfTest, 0); }

Status BoardWafer::BeginModel(const hal::ModelManifest& m) {
  Request request;
  request.Put(m.model_id);
  request.PutArray(m.name);
  request.Put(m.arch);
  request.Put(m.slots);
  request.Put(m.context_length);
  request.Put(uint32_t{m.shape_only});
  request.Put(m.stage);
  request.Put(static_cast<uint32_t>(m.tensors.size()));
  for (const hal::TensorSpec& t : m.tensors) {
    request.PutArray(t.name);
    request.Put(static_cast<uint32_t>(t.role));
    request.Put(t.layer);
    request.Put(static_cast<uint32_t>(t.dtype));
    request.Put(t.rank);
    request.Put(t.shape);
    request.Put(t.byte_size);
    request.Put(t.placement);
  }
  request.PutArray(m.kv_regions);
  Response response;
  return Call(WaferOp::kBeginModel, request, response);
}

Status BoardWafer::WriteTensor(uint32_t model_id, uint32_t tensor_index, uint64_t offset,
                               std::span<const std::byte> data) {
  Request request;
  request.Put(model_id);
  request.Put(tensor_index);
  request.Put(offset);
  request.PutArray(data);
  Response response;
  return Call(WaferOp::kWriteTensor, request, response);
}

Status BoardWafer::CommitModel(uint32_t model_id) {
  return Simple(WaferOp::kCommitModel, model_id);
}

Status BoardWafer::UnloadModel(uint32_t model_id) {
  return Simple(WaferOp::kUnloadModel, model_id);
}

// REQUIRES: outcomes.size() == request.seqs.size() (hal::Wafer::RunStep).
Status BoardWafer::RunStep(const hal::StepRequest& step, std::span<hal::SeqOutcome> outcomes,
                           DeviceTime& time) {
  if (outcomes.size() != step.seqs.size()) return InvalidArgument();
  Request request;
  request.Put(step.model_id);
  request.Put(uint32_t{step.from_stage});
  request.Put(static_cast<uint32_t>(step.seqs.size()));
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    const hal::SeqStepView& s = step.seqs[i];
    request.Put(s.slot);
    request.Put(uint32_t{s.reset});
    request.Put(s.generate);
    request.Put(s.sampling);
    request.Put(s.sampled_before);
    request.PutArray(s.input_tokens);
    request.PutArray(s.stop_tokens);
    request.PutArray(s.hidden_in);
    request.Put(static_cast<uint32_t>(outcomes[i].token_buffer.size()));
    request.Put(static_cast<uint32_t>(outcomes[i].hidden_buffer.size()));
  }
  Response response;
  if (Status s = Call(WaferOp::kRunStep, request, response); !s.ok()) return s;
  if (!response.Get(time)) return Internal();
  for (size_t i = 0; i < outcomes.size(); ++i) {
    hal::SeqOutcome& o = outcomes[i];
    uint32_t code = 0;
    o.slot = step.seqs[i].slot;
    if (!response.Get(code) || code > static_cast<uint32_t>(StatusCode::kUnauthenticated) ||
        !response.Get(o.context_tokens) || !response.GetArray(o.token_buffer, o.token_count) ||
        !response.GetArray(o.hidden_buffer, o.hidden_count)) {
      return Internal();
    }
    o.code = static_cast<StatusCode>(code);
  }
  return OkStatus();
}

void BoardWafer::ReadSensors(hal::SensorReadout& out) {
  Request request;
  Response response;
  hal::SensorReadout readout;
  // A wafer that does not answer reads as no data (zeros): the health checks see no heat and no
  // power rather than stale numbers.
  if (Call(WaferOp::kReadSensors, request, response).ok() && response.Get(readout) &&
      readout.region_count <= hal::kMaxRegions) {
    out = readout;
  } else {
    out = hal::SensorReadout{};
  }
}

void BoardWafer::PowerCycle() { Simple(WaferOp::kPowerCycle, 0).IgnoreError(); }

hal::PhysicalGeometry BoardWafer::Geometry() const {
  Request request;
  Response response;
  hal::PhysicalGeometry g;
  if (!Call(WaferOp::kGeometry, request, response).ok() || !response.Get(g)) return {};
  return g;
}

uint32_t BoardWafer::ReadRowFuses(uint32_t row) const {
  Request request;
  request.Put(row);
  Response response;
  uint32_t defects = 0;
  if (!Call(WaferOp::kReadRowFuses, request, response).ok() || !response.Get(defects)) {
    return 0;
  }
  return defects;
}

Status BoardWafer::ProgramHarvest(std::span<const uint32_t> row_map) {
  Request request;
  request.PutArray(row_map);
  Response response;
  return Call(WaferOp::kProgramHarvest, request, response);
}

Status BoardWafer::RemapPe(uint32_t row, uint32_t col) {
  return Simple(WaferOp::kRemapPe, row, col);
}

hal::PeContents BoardWafer::ContentsOfPe(uint32_t row, uint32_t col,
                                         std::span<uint32_t> tensors) const {
  Request request;
  request.Put(row);
  request.Put(col);
  request.Put(static_cast<uint32_t>(tensors.size()));
  Response response;
  hal::PeContents contents;
  uint32_t written = 0;
  if (!Call(WaferOp::kContentsOfPe, request, response).ok() || !response.Get(contents) ||
      !response.GetArray(tensors, written)) {
    return {};
  }
  return contents;
}

size_t BoardWafer::PollEvents(std::span<hal::HwEvent> out) {
  Request request;
  request.Put(static_cast<uint32_t>(out.size()));
  Response response;
  uint32_t count = 0;
  if (!Call(WaferOp::kPollEvents, request, response).ok() || !response.GetArray(out, count)) {
    return 0;
  }
  return count;
}

void BoardWafer::Halt() { Simple(WaferOp::kHalt, 0).IgnoreError(); }

Status BoardWafer::InjectFault(const hal::FaultSpec&) { return Unimplemented(); }

Status BoardWafer::TestSram(uint32_t first_row, uint32_t row_count, bool unused_only,
                            std::span<hal::DiagHit> hits, hal::DiagRun& run) {
  Request request;
  request.Put(first_row);
  request.Put(row_count);
  request.Put(uint32_t{unused_only});
  request.Put(static_cast<uint32_t>(hits.size()));
  Response response;
  if (Status s = Call(WaferOp::kTestSram, request, response); !s.ok()) return s;
  uint32_t count = 0;
  if (!response.Get(run) || !response.GetArray(hits, count)) return Internal();
  run.hit_count = count;
  return OkStatus();
}

Status BoardWafer::TestFabricLinks(uint32_t first_row, uint32_t row_count,
                                   std::span<hal::DiagHit> hits, hal::DiagRun& run) {
  Request request;
  request.Put(first_row);
  request.Put(row_count);
  request.Put(static_cast<uint32_t>(hits.size()));
  Response response;
  if (Status s = Call(WaferOp::kTestFabricLinks, request, response); !s.ok()) return s;
  uint32_t count = 0;
  if (!response.Get(run) || !response.GetArray(hits, count)) return Internal();
  run.hit_count = count;
  return OkStatus();
}

Status BoardWafer::RunKnownAnswer(uint32_t region, uint64_t& answer, uint64_t& pes,
                                  int64_t& device_ns) {
  Request request;
  request.Put(region);
  Response response;
  if (Status s = Call(WaferOp::kRunKnownAnswer, request, response); !s.ok()) return s;
  if (!response.Get(answer) || !response.Get(pes) || !response.Get(device_ns)) return Internal();
  return OkStatus();
}

Status BoardWafer::RetirePe(uint32_t row, uint32_t col) {
  return Simple(WaferOp::kRetirePe, row, col);
}

}  // namespace wafer::fw::board
