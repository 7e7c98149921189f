// The admin socket's decoder: never crashes; accepted messages re-encode and decode again.
#include "host/wire/admin_codec.h"
#include "tests/fuzz/fuzz_target.h"

using namespace wafer::host;

namespace {
// A refusal carries one of the codes the decoder contract lists (host/wire/messages.h), never a
// default Error's UNKNOWN or the INTERNAL an OK-coded Error turns into.
bool IsDecoderCode(wafer::StatusCode code) {
  return code == wafer::StatusCode::kDataLoss || code == wafer::StatusCode::kFailedPrecondition ||
         code == wafer::StatusCode::kUnimplemented || code == wafer::StatusCode::kInvalidArgument;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto m = DecodeAdmin({reinterpret_cast<const std::byte*>(data), size});
  if (!m.ok()) {
    FUZZ_CHECK(IsDecoderCode(m.code()));
    return 0;
  }
  std::string again = EncodeAdmin(*m);
  auto m2 = DecodeAdmin({reinterpret_cast<const std::byte*>(again.data()), again.size()});
  FUZZ_CHECK(m2.ok());
  FUZZ_CHECK(m2->index() == m->index());
  return 0;
}

std::vector<std::string> FuzzSeeds() {
  StatusReply r;
  r.boards.push_back(BoardInfo{});
  r.models.push_back(ModelInfo{});
  HealthReply health;
  BoardHealthInfo board;
  board.level = WireHealthLevel::kFail;
  board.rules.push_back(HealthRuleState{"temperature", WireHealthLevel::kFail, 102,
                                        "TEMPERATURE_CRITICAL", "hot", "cool it"});
  board.open = HealthIncidentInfo{1, 0, 102, "TEMPERATURE_CRITICAL", "hot", "drained", 5, 0, 1,
                                  "reset", "cool it"};
  board.closed.push_back(*board.open);
  board.drain = "health incident (evacuate)";
  health.boards.push_back(board);
  DiagnosticReport diag{12, 1, 3, WireDiagOutcome::kWarn, {}, 1, 0.5};
  diag.tests.push_back(DiagnosticTest{"sram_sweep", WireDiagOutcome::kWarn, 241,
                                      "DIAG_SRAM_RETIRED", "1 of 9 PEs failing", "watch spares",
                                      9, 1, {DiagnosticFinding{1, 2, 0, 4096, true, true}}, 1,
                                      0.25, 1000});
  return {EncodeAdmin(StatusQuery{1}), EncodeAdmin(r),
          EncodeAdmin(LoadModel{2, "m", "/x", 0, 4, 128, {0, 1}}),
          EncodeAdmin(LoadProgress{2, 1, 2, 3.0, 4.0, "transferring"}),
          EncodeAdmin(OperationResult{2, ErrorCode::kNone, "ok", 1.0}),
          EncodeAdmin(UnloadModel{3, "m", 1}), EncodeAdmin(ResetBoard{4, 0}),
          EncodeAdmin(ListJobs{5, "t", JobStateFilter::kAll, 10}),
          EncodeAdmin(JobList{5, {JobSummary{}}, 1, false}), EncodeAdmin(ShowJob{6, 7}),
          EncodeAdmin(JobDetail{}), EncodeAdmin(CancelJobRequest{8, 9}),
          EncodeAdmin(HealthQuery{10, 1}), EncodeAdmin(health),
          EncodeAdmin(ClearHealthIncident{11, 0}), EncodeAdmin(RunDiagnostics{12, 1, 3}),
          EncodeAdmin(DiagnosticProgress{12, 1, "sram_sweep", 3, 32}), EncodeAdmin(diag)};
}
