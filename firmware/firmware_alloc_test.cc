// The firmware's steady-state loop allocates nothing. This binary replaces the global allocation
// functions (operator new/delete and malloc/calloc/realloc, through glibc's __libc_* entry points)
// with counting versions; the tests count allocations around N iterations of the loop after
// init. Built as its own binary so the replacements touch no other test.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <new>
#include <vector>

#include "common/crc32c.h"
#include "firmware/command_processor.h"
#include "firmware/link/firmware_loop.h"
#include "firmware/testing/allocation_counter.h"
#include "firmware/testing/fake_platform.h"
#include "schemas/board_generated.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void __libc_free(void*);
}

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

extern "C" {
void* malloc(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t m) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(n, m);
}
void* realloc(void* p, size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
}

// The replaceable operator new family; the aligned and nothrow forms count as well.
void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = __libc_malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n == 0 ? 1 : n);
}
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(size_t n, std::align_val_t a) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = nullptr;
  if (posix_memalign(&p, static_cast<size_t>(a), n == 0 ? 1 : n) == 0) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { __libc_free(p); }
void operator delete[](void* p) noexcept { __libc_free(p); }
void operator delete(void* p, size_t) noexcept { __libc_free(p); }
void operator delete[](void* p, size_t) noexcept { __libc_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { free(p); }

namespace wafer::fw {

long testing::Allocations() { return g_allocations.load(std::memory_order_relaxed); }

namespace {

namespace wb = ::wafer::wire::board;
namespace wire = ::wafer::wire;

constexpr int kIterations = 1000;

using testing::Allocations;

// The counters must be live, or every test below would pass vacuously.
TEST(AllocationCounterTest, CountsNewAndMalloc) {
  const long before = Allocations();
  auto p = std::make_unique<int>(1);
  void* q = std::malloc(16);
  std::vector<int> v(10);
  EXPECT_GE(Allocations() - before, 3);
  std::free(q);
}

// A port that serves `init` frames once, then cycles over `steady` frames, and drops replies into
// a fixed buffer: it allocates nothing itself.
class ReplayPort final : public hal::HostPort {
 public:
  ReplayPort(std::vector<std::vector<std::byte>> init, std::vector<std::vector<std::byte>> steady)
      : init_(std::move(init)), steady_(std::move(steady)) {}
  Result<size_t> Receive(std::span<std::byte> buffer, int64_t) override {
    const std::vector<std::byte>& f =
        next_ < init_.size() ? init_[next_] : steady_[(next_ - init_.size()) % steady_.size()];
    ++next_;
    std::memcpy(buffer.data(), f.data(), std::min(buffer.size(), f.size()));
    return f.size();
  }
  Status Send(std::span<const std::byte> frame) override {
    last_size = frame.size();
    std::memcpy(last.data(), frame.data(), std::min(last.size(), frame.size()));
    return OkStatus();
  }
  // The last reply's type (the reply was verified by the test before counting began).
  wb::BoardMessage last_type() const {
    return wb::GetBoardEnvelope(last.data())->message_type();
  }
  std::array<std::byte, 64 << 10> last{};
  size_t last_size = 0;

 private:
  std::vector<std::vector<std::byte>> init_;
  std::vector<std::vector<std::byte>> steady_;
  size_t next_ = 0;
};

std::vector<std::byte> Frame(flatbuffers::FlatBufferBuilder& fbb, uint64_t id,
                             wb::BoardMessage type, flatbuffers::Offset<void> msg) {
  const wire::ProtocolVersion v(1, 0);
  wb::FinishBoardEnvelopeBuffer(fbb, wb::CreateBoardEnvelope(fbb, &v, id, type, msg));
  const auto* p = reinterpret_cast<const std::byte*>(fbb.GetBufferPointer());
  return {p, p + fbb.GetSize()};
}

constexpr uint32_t kStageHidden = 16;

// Boots the processor and stages + commits model 7 (one 64-byte tensor) and model 8 (a middle
// pipeline stage: hidden states in and out) through commands.
void InitBoard(CommandProcessor& cp) {
  Reply r;
  Command c;
  c.kind = CommandKind::kBoot;
  cp.Handle(c, r);
  ASSERT_EQ(r.code, StatusCode::kOk);
  hal::TensorSpec tensor;
  tensor.byte_size = 64;
  c = Command{};
  c.kind = CommandKind::kBeginModel;
  c.manifest.model_id = 7;
  c.manifest.tensors = std::span<const hal::TensorSpec>(&tensor, 1);
  c.manifest.slots = 4;
  c.manifest.context_length = 64;
  cp.Handle(c, r);
  ASSERT_EQ(r.code, StatusCode::kOk);
  std::array<std::byte, 64> bytes{};
  c = Command{};
  c.kind = CommandKind::kWriteWeights;
  c.write = WriteWeightsArgs{7, 0, 0, bytes, Crc32c(bytes)};
  cp.Handle(c, r);
  ASSERT_EQ(r.code, StatusCode::kOk);
  c = Command{};
  c.kind = CommandKind::kCommitModel;
  c.model_id = 7;
  cp.Handle(c, r);
  ASSERT_EQ(r.code, StatusCode::kOk);
  // Model 8: the middle stage of a pipeline (layer 1 of 3): hidden states in and out.
  c = Command{};
  c.kind = CommandKind::kBeginModel;
  c.manifest.model_id = 8;
  c.manifest.arch.hidden_size = kStageHidden;
  c.manifest.arch.num_layers = 3;
  c.manifest.stage = ModelStage{1, 1, false, false};
  c.manifest.tensors = std::span<const hal::TensorSpec>(&tensor, 1);
  c.manifest.slots = 4;
  c.manifest.context_length = 64;
  cp.Handle(c, r);
  ASSERT_EQ(r.code, StatusCode::kOk);
  c = Command{};
  c.kind = CommandKind::kWriteWeights;
  c.write = WriteWeightsArgs{8, 0, 0, bytes, Crc32c(bytes)};
  cp.Handle(c, r);
  ASSERT_EQ(r.code, StatusCode::kOk);
  c = Command{};
  c.kind = CommandKind::kCommitModel;
  c.model_id = 8;
  cp.Handle(c, r);
  ASSERT_EQ(r.code, StatusCode::kOk);
}

TEST(SteadyStateAllocationTest, CommandProcessorStepAndTelemetryAllocateNothing) {
  testing::FakePlatform fake;
  auto cp = std::make_unique<CommandProcessor>(fake.platform());  // Init may allocate.
  InitBoard(*cp);
  std::array<hal::SeqStepView, 4> seqs{};
  std::array<uint32_t, 3> prompt = {1, 2, 3};
  for (uint32_t i = 0; i < seqs.size(); ++i) {
    seqs[i].slot = i;
    seqs[i].input_tokens = prompt;
    seqs[i].generate = 2;
  }
  Command step;
  step.kind = CommandKind::kStep;
  step.step.model_id = 7;
  step.step.seqs = seqs;
  Command telemetry;
  telemetry.kind = CommandKind::kReadTelemetry;
  Command bad_step = step;  // A failing step also logs; logging must not allocate either.
  bad_step.step.model_id = 99;
  // A pipeline stage's step: hidden states in, hidden states out of the firmware's buffer.
  std::array<hal::SeqStepView, 4> stage_seqs{};
  std::vector<float> hidden_in(prompt.size() * kStageHidden, 0.5f);
  for (uint32_t i = 0; i < stage_seqs.size(); ++i) {
    stage_seqs[i].slot = i;
    stage_seqs[i].input_tokens = prompt;
    stage_seqs[i].hidden_in = hidden_in;
  }
  Command stage_step;
  stage_step.kind = CommandKind::kStep;
  stage_step.step.model_id = 8;
  stage_step.step.seqs = stage_seqs;
  Command read_log;
  read_log.kind = CommandKind::kReadErrorLog;
  Reply reply;

  const long before = Allocations();
  for (int i = 0; i < kIterations; ++i) {
    step.command_id = i;
    cp->Handle(step, reply);
    ASSERT_EQ(reply.kind, ReplyKind::kStep);
    cp->Handle(telemetry, reply);
    ASSERT_EQ(reply.kind, ReplyKind::kTelemetry);
    cp->Handle(bad_step, reply);
    ASSERT_EQ(reply.code, StatusCode::kNotFound);
    cp->Handle(read_log, reply);
    ASSERT_EQ(reply.kind, ReplyKind::kErrorLog);
    cp->Handle(stage_step, reply);
    ASSERT_EQ(reply.kind, ReplyKind::kStep);
    ASSERT_EQ(reply.outcomes[3].hidden_count, prompt.size() * kStageHidden);
  }
  EXPECT_EQ(Allocations() - before, 0);
  EXPECT_EQ(cp->steps(), 2u * kIterations);
}

TEST(SteadyStateAllocationTest, SuperloopDecodeHandleEncodeAllocatesNothing) {
  // Frames are built before counting: that is the host's work, not the firmware's.
  std::vector<std::vector<std::byte>> init;
  {
    flatbuffers::FlatBufferBuilder fbb;
    init.push_back(Frame(fbb, 1, wb::BoardMessage::Boot, wb::CreateBoot(fbb).Union()));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<uint64_t> shape = {16};
    const wb::PeRect placement(0, 0, 1, 1);
    std::vector<flatbuffers::Offset<wb::TensorDesc>> tensors = {
        wb::CreateTensorDescDirect(fbb, "t", wb::TensorRole::kEmbedding, 0, wb::DType::kF32,
                                   &shape, 64, &placement)};
    auto arch = wb::CreateModelArch(fbb);
    init.push_back(Frame(fbb, 2, wb::BoardMessage::BeginModel,
                         wb::CreateBeginModelDirect(fbb, 7, "m", arch, &tensors, 4, 64, false)
                             .Union()));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<uint8_t> bytes(64, 0);
    const uint32_t crc = Crc32c(std::as_bytes(std::span(bytes)));
    init.push_back(Frame(fbb, 3, wb::BoardMessage::WriteWeights,
                         wb::CreateWriteWeightsDirect(fbb, 7, 0, 0, &bytes, crc).Union()));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    init.push_back(Frame(fbb, 4, wb::BoardMessage::CommitModel,
                         wb::CreateCommitModel(fbb, 7).Union()));
  }
  {
    // Model 8: the middle stage of a pipeline (layer 1 of 3).
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<uint64_t> shape = {16};
    const wb::PeRect placement(0, 1, 1, 1);
    std::vector<flatbuffers::Offset<wb::TensorDesc>> tensors = {
        wb::CreateTensorDescDirect(fbb, "t", wb::TensorRole::kWq, 1, wb::DType::kF32, &shape, 64,
                                   &placement)};
    wb::ModelArchBuilder arch(fbb);
    arch.add_hidden_size(kStageHidden);
    arch.add_num_layers(3);
    const auto arch_offset = arch.Finish();
    const auto stage = wb::CreateModelStage(fbb, 1, 1, false, false);
    init.push_back(Frame(fbb, 5, wb::BoardMessage::BeginModel,
                         wb::CreateBeginModelDirect(fbb, 8, "stage", arch_offset, &tensors, 4, 64,
                                                    false, nullptr, stage)
                             .Union()));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<uint8_t> bytes(64, 0);
    const uint32_t crc = Crc32c(std::as_bytes(std::span(bytes)));
    init.push_back(Frame(fbb, 6, wb::BoardMessage::WriteWeights,
                         wb::CreateWriteWeightsDirect(fbb, 8, 0, 0, &bytes, crc).Union()));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    init.push_back(Frame(fbb, 7, wb::BoardMessage::CommitModel,
                         wb::CreateCommitModel(fbb, 8).Union()));
  }
  std::vector<std::vector<std::byte>> steady;
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<uint32_t> prompt = {1, 2, 3};
    std::vector<flatbuffers::Offset<wb::SeqStep>> seqs;
    for (uint32_t slot = 0; slot < 4; ++slot) {
      seqs.push_back(wb::CreateSeqStepDirect(fbb, slot, false, &prompt, 2));
    }
    steady.push_back(Frame(fbb, 10, wb::BoardMessage::Step,
                           wb::CreateStepDirect(fbb, 7, &seqs).Union()));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    steady.push_back(Frame(fbb, 11, wb::BoardMessage::ReadTelemetry,
                           wb::CreateReadTelemetry(fbb).Union()));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    steady.push_back(Frame(fbb, 12, wb::BoardMessage::ReadErrorLog,
                           wb::CreateReadErrorLog(fbb, 0, 0).Union()));
  }
  {
    // A pipeline stage's step: hidden states in and out.
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<uint32_t> prompt = {1, 2, 3};
    std::vector<float> hidden(prompt.size() * kStageHidden, 0.25f);
    std::vector<flatbuffers::Offset<wb::SeqStep>> seqs;
    for (uint32_t slot = 0; slot < 4; ++slot) {
      seqs.push_back(wb::CreateSeqStepDirect(fbb, slot, false, &prompt, 0, 0, nullptr, &hidden));
    }
    steady.push_back(Frame(fbb, 13, wb::BoardMessage::Step,
                           wb::CreateStepDirect(fbb, 8, &seqs).Union()));
  }
  const size_t init_frames = init.size();
  const size_t steady_frames = steady.size();
  testing::FakePlatform board;
  ReplayPort port(std::move(init), std::move(steady));
  auto fw = std::make_unique<FirmwareLoop>(port, board.platform());  // Init may allocate.
  for (size_t i = 0; i < init_frames; ++i) {
    ASSERT_TRUE(fw->PollOnce(0).ok());
    const wb::BoardEnvelope* env = wb::GetBoardEnvelope(port.last.data());
    if (env->message_type() == wb::BoardMessage::Ack) {
      ASSERT_EQ(env->message_as_Ack()->code(), wire::ErrorCode::kNone)
          << env->message_as_Ack()->detail()->str();
    }
  }
  ASSERT_EQ(fw->state(), BootState::kReady);
  // One warm-up round so every reply type has been encoded once.
  const wb::BoardMessage want[] = {wb::BoardMessage::StepReply, wb::BoardMessage::Telemetry,
                                   wb::BoardMessage::ErrorLogReply, wb::BoardMessage::StepReply};
  for (size_t i = 0; i < steady_frames; ++i) {
    ASSERT_TRUE(fw->PollOnce(0).ok());
    ASSERT_EQ(port.last_type(), want[i]);
  }

  const long before = Allocations();
  for (int i = 0; i < kIterations; ++i) ASSERT_TRUE(fw->PollOnce(0).ok());
  EXPECT_EQ(Allocations() - before, 0);
  EXPECT_EQ(fw->stats().frames_rejected, 0u);
  // Two of every four frames are steps (the first and the last); the warm-up round ran 2.
  const uint64_t rounds = kIterations / steady_frames, rest = kIterations % steady_frames;
  EXPECT_EQ(fw->processor().steps(), 2u + 2u * rounds + (rest > 0 ? 1u : 0u) + (rest > 3 ? 1u : 0u));
}

}  // namespace
}  // namespace wafer::fw
