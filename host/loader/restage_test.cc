#include "host/loader/restage.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "board_sim/board_runner.h"
#include "host/board/board_codec.h"
#include "host/board/zmq_board_link.h"
#include "host/loader/stage_manifest.h"
#include "host/loader/staging.h"
#include "host/models/mkmodel.h"
#include "tests/daemon_harness.h"

namespace wafer::host {
namespace {

// The message of a failed HostResult/HostStatus; "" for a successful one.
template <typename R>
std::string MessageOf(const R& r) {
  return r.ok() ? std::string() : r.error().message;
}

constexpr uint32_t kModelId = 11;

using testing::TempDir;

// The tiny functional model mkmodel writes (float32), or its config.json alone (shape-only),
// opened and planned over one board of `geometry` by the worker's PrepareModel.
PreparedModel PrepareTiny(const TempDir& dir, bool shape_only, const BoardGeometry& geometry) {
  MkModelOptions options;
  options.out_dir = dir.path() + "/full";
  options.seed = 3;
  HostStatus made = MakeModel(options);
  EXPECT_TRUE(made.ok()) << made.error().ToString();
  PrepareWork work;
  work.name = "tiny";
  work.path = options.out_dir;
  if (shape_only) {
    work.path = dir.path() + "/shape";
    std::filesystem::create_directories(work.path);
    std::filesystem::copy_file(options.out_dir + "/config.json", work.path + "/config.json");
  }
  work.slots = 2;
  work.context_length = 64;
  work.boards = {0};
  work.geometry = geometry;
  work.gaps = {RowBand{0, geometry.fabric_height}};
  std::shared_ptr<const PreparedModel> model;
  RowBand rows;
  HostStatus prepared = PrepareModel(work, &model, &rows);
  EXPECT_TRUE(prepared.ok()) << prepared.error().ToString();
  if (model == nullptr) return PreparedModel{};
  EXPECT_EQ(model->source.shape_only, shape_only);
  return *model;
}

// An embedded board (firmware superloop + simulated wafer on the mini preset), booted, and the
// ZeroMQ link to it.
struct RealBoard {
  explicit RealBoard(const std::string& endpoint) {
    sim::BoardOptions options;
    options.preset_dir = WAFER_PRESET_DIR_FOR_TEST;
    options.seed = 2;
    auto started = sim::StartEmbeddedBoard(context, endpoint, options);
    EXPECT_TRUE(started.ok()) << started.error().ToString();
    if (!started.ok()) return;
    board = std::move(started).value();
    auto connected = ConnectBoardLink(context, endpoint, 5000, SystemClock::Get());
    EXPECT_TRUE(connected.ok());
    if (!connected.ok()) return;
    link = std::move(connected).value();
    HostStatus booted = link->Boot();
    EXPECT_TRUE(booted.ok()) << booted.error().message;
    HostResult<BoardIdentity> id = link->Identify();
    EXPECT_TRUE(id.ok()) << id.error().message;
    if (id.ok()) identity = *id;
  }

  zmq::context_t context{1};
  std::unique_ptr<sim::EmbeddedBoard> board;
  std::unique_ptr<BoardLink> link;
  BoardIdentity identity;
};

// Stages and commits stage 0 of `model` with the worker's StageModel; returns the weight bytes
// sent.
uint64_t Load(BoardLink& link, const PreparedModel& model, uint64_t chunk) {
  uint64_t sent = 0;
  HostStatus staged = StageModel(
      link, model, kModelId, 0, chunk, [&](uint64_t total) { sent = total; }, nullptr);
  EXPECT_TRUE(staged.ok()) << staged.error().ToString();
  return sent;
}

const std::vector<uint32_t> kPrompt = {72, 101, 108, 108, 111, 32, 119};

// Greedy tokens for kPrompt in a fresh sequence, or the step's error.
HostResult<std::vector<uint32_t>> Generate(BoardLink& link) {
  SeqStep seq;
  seq.slot = 0;
  seq.reset = true;
  seq.input_tokens = kPrompt;
  seq.generate = 12;
  WAFER_HOST_ASSIGN_OR_RETURN(StepOutcome out, link.Step(kModelId, {seq}));
  return out.results.at(0).tokens;
}

// The manifest index of layer `layer`'s tensor of `role` in stage 0, and its rectangle.
size_t FindTensor(const PreparedModel& model, TensorRole role, uint32_t layer, PeRect* rect) {
  ModelManifest manifest;
  std::vector<std::span<const std::byte>> data;
  HostStatus listed = StageManifest(model, kModelId, 0, &manifest, &data);
  EXPECT_TRUE(listed.ok()) << listed.error().ToString();
  for (size_t i = 0; i < manifest.tensors.size(); ++i) {
    if (manifest.tensors[i].role == role && manifest.tensors[i].layer == layer) {
      *rect = manifest.tensors[i].placement;
      return i;
    }
  }
  ADD_FAILURE() << "no such tensor";
  return 0;
}

bool LogHas(BoardLink& link, const char* code) {
  HostResult<BoardErrorLog> log = link.ReadErrorLog(0);
  if (!log.ok()) return false;
  return std::any_of(log->records.begin(), log->records.end(), [&](const BoardLogRecord& r) {
    return std::string(BoardLogCodeName(r.code)) == code;
  });
}

TEST(RestageTest, RewritesOnlyTheLostTensorsAndTheModelGeneratesAsBefore) {
  RealBoard board("inproc://restage-functional");
  ASSERT_NE(board.link, nullptr);
  BoardLink& link = *board.link;
  TempDir dir;
  const PreparedModel model = PrepareTiny(dir, false, GeometryFromIdentity(board.identity));
  const uint64_t chunk = board.identity.max_chunk_bytes;
  const uint64_t loaded = Load(link, model, chunk);
  ASSERT_EQ(loaded, model.source.weight_bytes());
  HostResult<std::vector<uint32_t>> healthy = Generate(link);
  ASSERT_TRUE(healthy.ok()) << healthy.error().message;
  // A model left poisoned would generate token 0 only (NaN logits): the tokens tell them apart.
  ASSERT_NE(*healthy, std::vector<uint32_t>(healthy->size(), 0));

  // The PE at the top-left of layer 1's up projection stops: a spare takes its place, and the
  // bytes it held are gone.
  PeRect rect;
  const size_t up = FindTensor(model, TensorRole::kWUp, 1, &rect);
  HostStatus injected = link.InjectFault({BoardFaultKind::kPeStop, 0, rect.y, rect.x, 0});
  ASSERT_TRUE(injected.ok()) << injected.error().message;
  HostResult<std::vector<uint32_t>> lost = Generate(link);
  ASSERT_EQ(lost.status().code(), StatusCode::kDataLoss);
  HostResult<BoardFaults> faults = link.ReadFaults(0);
  ASSERT_TRUE(faults.ok());
  ASSERT_EQ(faults->faults.size(), 1u);
  const BoardFaultReport& fault = faults->faults[0];
  EXPECT_TRUE(fault.remapped);
  EXPECT_EQ(fault.model_id, kModelId);
  ASSERT_NE(std::find(fault.restage_tensors.begin(), fault.restage_tensors.end(), up),
            fault.restage_tensors.end());

  uint64_t next_sequence = 0;
  RestageReport report;
  HostStatus restaged =
      RestageFaultedTensors(link, model, kModelId, 0, &next_sequence, chunk, &report);
  ASSERT_TRUE(restaged.ok()) << restaged.error().ToString();
  EXPECT_EQ(next_sequence, faults->next_sequence);
  EXPECT_EQ(report.fault_reports, 1u);
  EXPECT_EQ(report.tensors, fault.restage_tensors.size());
  ModelManifest manifest;
  std::vector<std::span<const std::byte>> data;
  ASSERT_TRUE(StageManifest(model, kModelId, 0, &manifest, &data).ok());
  uint64_t listed_bytes = 0;
  for (uint32_t i : fault.restage_tensors) listed_bytes += manifest.tensors[i].byte_size;
  EXPECT_EQ(report.bytes, listed_bytes);
  EXPECT_LT(report.bytes * 10, loaded);  // One PE's tensors, not the model.
  std::printf("re-staged %u of %zu tensors: %llu of %llu bytes (%.1f%%)\n", report.tensors,
              manifest.tensors.size(), static_cast<unsigned long long>(report.bytes),
              static_cast<unsigned long long>(loaded), 100.0 * double(report.bytes) / loaded);
  EXPECT_TRUE(LogHas(link, "kModelRepaired"));

  // The repaired model generates what it did before the fault.
  HostResult<std::vector<uint32_t>> repaired = Generate(link);
  ASSERT_TRUE(repaired.ok()) << repaired.error().message;
  EXPECT_EQ(*repaired, *healthy);

  // The reports were consumed: a second repair has nothing to rewrite, and the board refuses to
  // repair a model that lost nothing.
  restaged = RestageFaultedTensors(link, model, kModelId, 0, &next_sequence, chunk, &report);
  EXPECT_EQ(restaged.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(report.tensors, 0u);
  const std::string detail = MessageOf(restaged);
  EXPECT_NE(detail.find("already committed"), std::string::npos) << detail;
}

TEST(RestageTest, ALostTensorLeftUnwrittenKeepsTheModelDown) {
  RealBoard board("inproc://restage-unwritten");
  ASSERT_NE(board.link, nullptr);
  BoardLink& link = *board.link;
  TempDir dir;
  const PreparedModel model = PrepareTiny(dir, false, GeometryFromIdentity(board.identity));
  Load(link, model, board.identity.max_chunk_bytes);
  HostResult<std::vector<uint32_t>> healthy = Generate(link);
  ASSERT_TRUE(healthy.ok()) << healthy.error().message;

  // An uncorrectable ECC error in layer 0's query projection.
  PeRect rect;
  const size_t wq = FindTensor(model, TensorRole::kWq, 0, &rect);
  ASSERT_TRUE(link.InjectFault({BoardFaultKind::kEccUncorrectable, 0, rect.y, rect.x, 0}).ok());
  HostResult<std::vector<uint32_t>> lost = Generate(link);
  ASSERT_EQ(lost.code(), StatusCode::kDataLoss);
  EXPECT_NE(lost.error().message.find("ReadFaults"), std::string::npos) << lost.error().message;

  // Committing with nothing rewritten, or half of the tensor, is refused.
  HostStatus early = link.CommitModel(kModelId);
  ASSERT_EQ(early.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(early.error().message.find("not fully rewritten"), std::string::npos)
      << early.error().message;
  ModelManifest manifest;
  std::vector<std::span<const std::byte>> data;
  ASSERT_TRUE(StageManifest(model, kModelId, 0, &manifest, &data).ok());
  const auto half = data[wq].first(data[wq].size() / 2);
  HostStatus half_written = link.WriteWeights(kModelId, static_cast<uint32_t>(wq), 0, half);
  ASSERT_TRUE(half_written.ok()) << half_written.error().message;
  EXPECT_EQ(link.CommitModel(kModelId).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Generate(link).status().code(), StatusCode::kDataLoss);
  // A tensor the fault did not touch is not the repair's to write.
  const uint32_t other = wq == 0 ? 1 : 0;
  HostStatus untouched = link.WriteWeights(kModelId, other, 0, data[other].first(16));
  ASSERT_EQ(untouched.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(untouched.error().message.find("not lost"), std::string::npos)
      << untouched.error().message;

  // The helper writes the whole tensor again from the start.
  uint64_t next_sequence = 0;
  RestageReport report;
  HostStatus restaged = RestageFaultedTensors(link, model, kModelId, 0, &next_sequence,
                                              board.identity.max_chunk_bytes, &report);
  ASSERT_TRUE(restaged.ok()) << restaged.error().ToString();
  EXPECT_EQ(report.tensors, 1u);
  EXPECT_EQ(report.bytes, data[wq].size());
  HostResult<std::vector<uint32_t>> repaired = Generate(link);
  ASSERT_TRUE(repaired.ok()) << repaired.error().message;
  EXPECT_EQ(*repaired, *healthy);
}

TEST(RestageTest, ShapeOnlyModelIsRepairedByTheCommitAlone) {
  RealBoard board("inproc://restage-shape");
  ASSERT_NE(board.link, nullptr);
  BoardLink& link = *board.link;
  TempDir dir;
  const PreparedModel model = PrepareTiny(dir, true, GeometryFromIdentity(board.identity));
  EXPECT_EQ(Load(link, model, board.identity.max_chunk_bytes), 0u);
  PeRect rect;
  FindTensor(model, TensorRole::kWq, 1, &rect);
  ASSERT_TRUE(link.InjectFault({BoardFaultKind::kPeStop, 0, rect.y, rect.x, 0}).ok());
  EXPECT_EQ(Generate(link).status().code(), StatusCode::kDataLoss);

  uint64_t next_sequence = 0;
  RestageReport report;
  HostStatus restaged = RestageFaultedTensors(link, model, kModelId, 0, &next_sequence,
                                              board.identity.max_chunk_bytes, &report);
  ASSERT_TRUE(restaged.ok()) << restaged.error().ToString();
  EXPECT_EQ(report.fault_reports, 1u);
  EXPECT_EQ(report.tensors, 0u);
  EXPECT_EQ(report.bytes, 0u);
  HostResult<std::vector<uint32_t>> repaired = Generate(link);
  EXPECT_TRUE(repaired.ok()) << repaired.error().message;
}

// --- Against a scripted link: what the board says, and what the helper sends. ---

class ScriptedLink final : public BoardLink {
 public:
  // What the calls this test does not script answer.
  static Error Unscripted() { return Error{StatusCode::kUnimplemented, "not scripted"}; }

  HostResult<BoardIdentity> Identify() override { return BoardIdentity{}; }
  HostStatus Boot() override { return HostOk(); }
  HostStatus BeginModel(const ModelManifest&) override { return Unscripted(); }
  HostStatus WriteWeights(uint32_t model_id, uint32_t tensor_index, uint64_t offset,
                          std::span<const std::byte> data) override {
    writes.push_back({model_id, tensor_index, offset, data.size()});
    if (!write_status.ok()) return Error{write_status.code(), "scripted write failure"};
    return HostOk();
  }
  HostStatus CommitModel(uint32_t model_id) override {
    commits.push_back(model_id);
    if (!commit_status.ok()) return Error{commit_status.code(), "scripted commit failure"};
    return HostOk();
  }
  HostStatus UnloadModel(uint32_t) override { return Unscripted(); }
  HostResult<StepOutcome> Step(uint32_t, const std::vector<SeqStep>&) override {
    return Unscripted();
  }
  HostResult<BoardTelemetry> ReadTelemetry() override { return Unscripted(); }
  HostStatus Reset() override { return Unscripted(); }
  HostResult<BoardErrorLog> ReadErrorLog(uint64_t) override { return Unscripted(); }
  HostStatus BeginFirmwareImage(uint32_t, uint64_t, uint32_t, std::span<const std::byte>) override {
    return Unscripted();
  }
  HostStatus WriteFirmwareChunk(uint32_t, uint64_t, std::span<const std::byte>) override {
    return Unscripted();
  }
  HostStatus CommitFirmwareImage(uint32_t) override { return Unscripted(); }
  HostResult<BoardHarvestMap> ReadGeometry() override { return Unscripted(); }
  HostResult<BoardFirmwareSlots> ReadFirmwareSlots() override { return Unscripted(); }
  HostStatus RollbackFirmware() override { return Unscripted(); }
  HostResult<BoardDiagnostic> RunDiagnostic(BoardDiagTest, uint32_t, uint32_t) override {
    return Unscripted();
  }
  HostStatus InjectFault(const BoardFaultInjection&) override { return Unscripted(); }
  HostStatus Heartbeat() override { return Unscripted(); }
  // Every report from `from` on, as the firmware answers (0: all of them).
  HostResult<BoardFaults> ReadFaults(uint64_t from) override {
    ++fault_reads;
    if (!faults_status.ok()) return Error{faults_status.code(), "no answer within 300 ms"};
    BoardFaults out;
    for (const BoardFaultReport& r : reports) {
      if (r.sequence >= from) out.faults.push_back(r);
    }
    out.next_sequence = reports.empty() ? 1 : reports.back().sequence + 1;
    return out;
  }

  struct Write {
    uint32_t model_id;
    uint32_t tensor;
    uint64_t offset;
    size_t size;
  };
  std::vector<BoardFaultReport> reports;
  Status faults_status;
  Status write_status;
  Status commit_status;
  std::vector<Write> writes;
  std::vector<uint32_t> commits;
  int fault_reads = 0;
};

BoardFaultReport Report(uint64_t sequence, uint32_t model_id, std::vector<uint32_t> tensors) {
  BoardFaultReport r;
  r.sequence = sequence;
  r.kind = BoardFaultKind::kPeStop;
  r.remapped = true;
  r.model_id = model_id;
  r.restage_tensors = std::move(tensors);
  return r;
}

class RestageScriptedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    model_ = new PreparedModel(PrepareTiny(*dir_, false, BoardGeometry{128, 128, 48 << 10}));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }
  static TempDir* dir_;
  static PreparedModel* model_;
};
TempDir* RestageScriptedTest::dir_ = nullptr;
PreparedModel* RestageScriptedTest::model_ = nullptr;

TEST_F(RestageScriptedTest, RewritesEachListedTensorOnceInChunksThenCommits) {
  ScriptedLink link;
  // Reports before the caller's sequence, of another model, and the same tensor twice.
  link.reports = {Report(3, kModelId, {0}), Report(4, 99, {1}), Report(5, kModelId, {4, 2}),
                  Report(6, kModelId, {2})};
  link.reports[3].kv_cache_lost = true;
  uint64_t next_sequence = 4;
  RestageReport report;
  HostStatus restaged =
      RestageFaultedTensors(link, *model_, kModelId, 0, &next_sequence, 1000, &report);
  ASSERT_TRUE(restaged.ok()) << restaged.error().ToString();
  EXPECT_EQ(next_sequence, 7u);
  EXPECT_EQ(link.fault_reads, 1);  // The board answered everything at once.
  EXPECT_EQ(report.fault_reports, 2u);
  EXPECT_TRUE(report.kv_cache_lost);
  EXPECT_EQ(report.tensors, 2u);
  ModelManifest manifest;
  std::vector<std::span<const std::byte>> data;
  ASSERT_TRUE(StageManifest(*model_, kModelId, 0, &manifest, &data).ok());
  EXPECT_EQ(report.bytes, data[2].size() + data[4].size());
  // Tensor 2, then 4, each from offset 0 in chunks of at most 1000 bytes, then the commit.
  uint64_t expected_offset = 0;
  uint32_t tensor = 2;
  for (const ScriptedLink::Write& w : link.writes) {
    EXPECT_EQ(w.model_id, kModelId);
    EXPECT_LE(w.size, 1000u);
    if (w.tensor != tensor) {
      EXPECT_EQ(expected_offset, data[tensor].size());
      EXPECT_EQ(w.tensor, 4u);
      tensor = w.tensor;
      expected_offset = 0;
    }
    EXPECT_EQ(w.offset, expected_offset);
    expected_offset += w.size;
  }
  EXPECT_EQ(tensor, 4u);
  EXPECT_EQ(expected_offset, data[4].size());
  EXPECT_EQ(link.commits, std::vector<uint32_t>{kModelId});
}

TEST_F(RestageScriptedTest, ATensorOutsideTheManifestIsDataLossAndNothingIsSent) {
  ScriptedLink link;
  link.reports = {Report(1, kModelId, {1, 5000})};
  uint64_t next_sequence = 0;
  RestageReport report;
  HostStatus restaged =
      RestageFaultedTensors(link, *model_, kModelId, 0, &next_sequence, 1000, &report);
  EXPECT_EQ(restaged.status(), DataLoss());
  const std::string detail = MessageOf(restaged);
  EXPECT_NE(detail.find("tensor 5000"), std::string::npos) << detail;
  EXPECT_TRUE(link.writes.empty());
  EXPECT_TRUE(link.commits.empty());
  EXPECT_EQ(next_sequence, 2u);  // The reports were read all the same.
}

TEST_F(RestageScriptedTest, LinkFailuresComeBackWithTheirCodeAndDetail) {
  std::string detail;
  uint64_t next_sequence = 0;
  {
    ScriptedLink link;
    link.faults_status = Unavailable();
    HostStatus restaged =
        RestageFaultedTensors(link, *model_, kModelId, 0, &next_sequence, 1000, nullptr);
    EXPECT_EQ(restaged.status(), Unavailable());
    detail = MessageOf(restaged);
    EXPECT_NE(detail.find("fault reports: no answer"), std::string::npos) << detail;
    EXPECT_EQ(next_sequence, 0u);
  }
  {
    ScriptedLink link;
    link.reports = {Report(1, kModelId, {3})};
    link.write_status = Unavailable();
    HostStatus restaged =
        RestageFaultedTensors(link, *model_, kModelId, 0, &next_sequence, 1000, nullptr);
    EXPECT_EQ(restaged.status(), Unavailable());
    detail = MessageOf(restaged);
    EXPECT_NE(detail.find("rewriting model.layers.0."), std::string::npos) << detail;
    EXPECT_EQ(link.writes.size(), 1u);
    EXPECT_TRUE(link.commits.empty());
  }
  {
    // Reports 2..4 were overwritten on the board before this host read them: the board's
    // refusal says so.
    ScriptedLink link;
    link.reports = {Report(5, kModelId, {3})};
    link.commit_status = FailedPrecondition();
    next_sequence = 2;
    HostStatus restaged =
        RestageFaultedTensors(link, *model_, kModelId, 0, &next_sequence, 1000, nullptr);
    EXPECT_EQ(restaged.status(), FailedPrecondition());
    detail = MessageOf(restaged);
    EXPECT_NE(detail.find("overwritten"), std::string::npos) << detail;
  }
  {
    ScriptedLink link;
    EXPECT_EQ(
        RestageFaultedTensors(link, *model_, kModelId, 0, &next_sequence, 0, nullptr).status(),
        InvalidArgument());
    EXPECT_EQ(
        RestageFaultedTensors(link, *model_, kModelId, 1, &next_sequence, 1000, nullptr).status(),
        InvalidArgument());  // A one-board plan has no stage 1.
    EXPECT_EQ(link.fault_reads, 0);
  }
}

}  // namespace
}  // namespace wafer::host
