// The admin codec's job messages (ListJobs, JobList, ShowJob, JobDetail, CancelJobRequest) and
// diagnostics (RunDiagnostics, DiagnosticProgress, DiagnosticReport): every field survives a
// round trip, and requests out of bounds are INVALID_ARGUMENT naming
// the field.
#include "host/wire/admin_codec.h"

#include <gtest/gtest.h>

namespace wafer::host {
namespace {

std::span<const std::byte> Bytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// Encodes and decodes `message`; fails the test when the decode fails.
AdminMessage RoundTrip(const AdminMessage& message) {
  HostResult<AdminMessage> decoded = DecodeAdmin(Bytes(EncodeAdmin(message)));
  EXPECT_TRUE(decoded.ok()) << decoded.error().message;
  return decoded.ok() ? *decoded : AdminMessage{};
}

// The refusal of `message`'s decode: the wire code it answers with, its detail and the request
// tag the decoder read.
struct Refused {
  ErrorCode code = ErrorCode::kNone;
  std::string detail;
  uint64_t request_tag = 0;
};
Refused Refusal(const AdminMessage& message) {
  uint64_t request_tag = 0;
  HostResult<AdminMessage> decoded = DecodeAdmin(Bytes(EncodeAdmin(message)), &request_tag);
  EXPECT_FALSE(decoded.ok());
  if (decoded.ok()) return Refused{};
  return Refused{DecodeErrorWireCode(decoded.code()), decoded.error().message, request_tag};
}

JobSummary Summary(uint64_t id, JobState state) {
  JobSummary s;
  s.job_id = id;
  s.tenant = "team-a";
  s.model = "tiny";
  s.state = state;
  s.priority_class = "interactive";
  s.priority = 250;
  s.queue_position = 7;
  s.age_ms = 1'234'567;
  s.tokens_generated = 42;
  s.finish_reason = "cancelled";
  return s;
}

void ExpectSameSummary(const JobSummary& a, const JobSummary& b) {
  EXPECT_EQ(a.job_id, b.job_id);
  EXPECT_EQ(a.tenant, b.tenant);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.priority_class, b.priority_class);
  EXPECT_EQ(a.priority, b.priority);
  EXPECT_EQ(a.queue_position, b.queue_position);
  EXPECT_EQ(a.age_ms, b.age_ms);
  EXPECT_EQ(a.tokens_generated, b.tokens_generated);
  EXPECT_EQ(a.finish_reason, b.finish_reason);
}

TEST(AdminCodecTest, ListJobsRoundTripsEveryFilter) {
  for (JobStateFilter state : {JobStateFilter::kUnfinished, JobStateFilter::kQueued,
                               JobStateFilter::kRunning, JobStateFilter::kFinished,
                               JobStateFilter::kAll}) {
    AdminMessage out = RoundTrip(ListJobs{11, "team-b", state, kMaxJobListLimit});
    const ListJobs& l = std::get<ListJobs>(out);
    EXPECT_EQ(l.request_tag, 11u);
    EXPECT_EQ(l.tenant, "team-b");
    EXPECT_EQ(l.state, state);
    EXPECT_EQ(l.limit, kMaxJobListLimit);
  }
  // The defaults: every tenant, unfinished jobs, limit 0 (the daemon's default).
  const ListJobs l = std::get<ListJobs>(RoundTrip(ListJobs{}));
  EXPECT_EQ(l.tenant, "");
  EXPECT_EQ(l.state, JobStateFilter::kUnfinished);
  EXPECT_EQ(l.limit, 0u);
}

TEST(AdminCodecTest, JobListAndJobDetailRoundTripEveryField) {
  JobList list{5, {Summary(1, JobState::kQueued), Summary(0xfedcba9876543210ull,
                                                           JobState::kFinished)},
               9, true};
  const JobList l = std::get<JobList>(RoundTrip(list));
  EXPECT_EQ(l.request_tag, 5u);
  ASSERT_EQ(l.jobs.size(), 2u);
  ExpectSameSummary(l.jobs[0], list.jobs[0]);
  ExpectSameSummary(l.jobs[1], list.jobs[1]);
  EXPECT_EQ(l.total, 9u);
  EXPECT_TRUE(l.truncated);

  JobDetail d;
  d.request_tag = 6;
  d.summary = Summary(3, JobState::kRunning);
  d.prompt_tokens = 17;
  d.max_tokens = 64;
  d.accepted_unix_ms = 1'700'000'000'123;
  d.deadline_unix_ms = 1'700'000'060'000;
  d.ttft_target_ms = 250;
  d.first_token = true;
  d.ttft_ns = 12'345;
  d.queued_ns = 1'000;
  d.total_ns = 99'999'999'999;
  d.device_ns = 555;
  d.chunks = 8;
  d.cancel_requested = true;
  d.error_code = ErrorCode::kInternal;
  d.detail = "board went away";
  const JobDetail r = std::get<JobDetail>(RoundTrip(d));
  EXPECT_EQ(r.request_tag, 6u);
  ExpectSameSummary(r.summary, d.summary);
  EXPECT_EQ(r.prompt_tokens, 17u);
  EXPECT_EQ(r.max_tokens, 64u);
  EXPECT_EQ(r.accepted_unix_ms, d.accepted_unix_ms);
  EXPECT_EQ(r.deadline_unix_ms, d.deadline_unix_ms);
  EXPECT_EQ(r.ttft_target_ms, 250u);
  EXPECT_TRUE(r.first_token);
  EXPECT_EQ(r.ttft_ns, 12'345);
  EXPECT_EQ(r.queued_ns, 1'000);
  EXPECT_EQ(r.total_ns, 99'999'999'999);
  EXPECT_EQ(r.device_ns, 555);
  EXPECT_EQ(r.chunks, 8u);
  EXPECT_TRUE(r.cancel_requested);
  EXPECT_EQ(r.error_code, ErrorCode::kInternal);
  EXPECT_EQ(r.detail, "board went away");
}

TEST(AdminCodecTest, ShowAndCancelRoundTrip) {
  const ShowJob s = std::get<ShowJob>(RoundTrip(ShowJob{3, 0xffffffffffffffffull}));
  EXPECT_EQ(s.request_tag, 3u);
  EXPECT_EQ(s.job_id, 0xffffffffffffffffull);
  const CancelJobRequest c = std::get<CancelJobRequest>(RoundTrip(CancelJobRequest{4, 77}));
  EXPECT_EQ(c.request_tag, 4u);
  EXPECT_EQ(c.job_id, 77u);
}

TEST(AdminCodecTest, AStateUnknownToThisBuildReadsAsUnknown) {
  JobSummary s = Summary(1, static_cast<JobState>(9));
  const JobList l = std::get<JobList>(RoundTrip(JobList{1, {s}, 1, false}));
  ASSERT_EQ(l.jobs.size(), 1u);
  EXPECT_EQ(l.jobs[0].state, JobState::kUnknown);
}

TEST(AdminCodecTest, RequestsOutOfBoundsAreInvalidArgumentNamingTheField) {
  Refused e = Refusal(ListJobs{21, "", static_cast<JobStateFilter>(5), 0});
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.request_tag, 21u);
  EXPECT_EQ(e.detail.rfind("ListJobs.state: 5 is not a state filter", 0), 0u) << e.detail;

  e = Refusal(ListJobs{22, "", JobStateFilter::kAll, kMaxJobListLimit + 1});
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.request_tag, 22u);
  EXPECT_EQ(e.detail, "ListJobs.limit: 10001 is above the maximum of 10000");

  e = Refusal(ListJobs{23, std::string(kMaxJobTenantFilterBytes + 1, 't'), {}, 0});
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.detail.rfind("ListJobs.tenant: 257 bytes", 0), 0u) << e.detail;
  // The longest tenant a filter may name still passes.
  EXPECT_EQ(std::get<ListJobs>(RoundTrip(ListJobs{1, std::string(256, 't'), {}, 0})).tenant,
            std::string(256, 't'));

  e = Refusal(ShowJob{24, 0});
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.request_tag, 24u);
  EXPECT_EQ(e.detail, "ShowJob.job_id: 0 is no job id");
  e = Refusal(CancelJobRequest{25, 0});
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.request_tag, 25u);
  EXPECT_EQ(e.detail, "CancelJobRequest.job_id: 0 is no job id");
}

TEST(AdminCodecTest, DiagnosticsRoundTripEveryFieldAndRefuseALevelOutOfRange) {
  const RunDiagnostics run = std::get<RunDiagnostics>(RoundTrip(RunDiagnostics{31, 2, 3}));
  EXPECT_EQ(run.request_tag, 31u);
  EXPECT_EQ(run.board, 2u);
  EXPECT_EQ(run.level, 3u);
  for (uint32_t level : {0u, 4u}) {
    const Refused e = Refusal(RunDiagnostics{32, 0, level});
    EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(e.request_tag, 32u);
    EXPECT_EQ(e.detail, "RunDiagnostics.level: " + std::to_string(level) + " is not 1, 2 or 3");
  }

  const DiagnosticProgress p =
      std::get<DiagnosticProgress>(RoundTrip(DiagnosticProgress{33, 1, "sram_sweep", 12, 32}));
  EXPECT_EQ(p.request_tag, 33u);
  EXPECT_EQ(p.board, 1u);
  EXPECT_EQ(p.test, "sram_sweep");
  EXPECT_EQ(p.done, 12u);
  EXPECT_EQ(p.total, 32u);

  DiagnosticReport report{34, 1, 3, WireDiagOutcome::kWarn, {}, 2, 1.5};
  DiagnosticTest t{"fabric_links", WireDiagOutcome::kWarn, 243, "DIAG_LINK_RETIRED",
                   "2 of 100 links failing", "watch the spares", 100, 2,
                   {DiagnosticFinding{7, 9, 3, 1, true, false}}, 2, 0.125, 4567};
  report.tests = {t, DiagnosticTest{"heartbeat", WireDiagOutcome::kSkip, 0, "", "no link", "",
                                    0, 0, {}, 0, 0, 0}};
  const DiagnosticReport r = std::get<DiagnosticReport>(RoundTrip(report));
  EXPECT_EQ(r.request_tag, 34u);
  EXPECT_EQ(r.board, 1u);
  EXPECT_EQ(r.level, 3u);
  EXPECT_EQ(r.outcome, WireDiagOutcome::kWarn);
  EXPECT_EQ(r.pes_retired, 2u);
  EXPECT_EQ(r.elapsed_s, 1.5);
  ASSERT_EQ(r.tests.size(), 2u);
  const DiagnosticTest& u = r.tests[0];
  EXPECT_EQ(u.name, t.name);
  EXPECT_EQ(u.outcome, t.outcome);
  EXPECT_EQ(u.code, t.code);
  EXPECT_EQ(u.code_name, t.code_name);
  EXPECT_EQ(u.message, t.message);
  EXPECT_EQ(u.action, t.action);
  EXPECT_EQ(u.units_tested, 100u);
  EXPECT_EQ(u.failures, 2u);
  EXPECT_EQ(u.retired, 2u);
  EXPECT_EQ(u.elapsed_s, 0.125);
  EXPECT_EQ(u.device_ns, 4567);
  ASSERT_EQ(u.findings.size(), 1u);
  EXPECT_EQ(u.findings[0].row, 7u);
  EXPECT_EQ(u.findings[0].pe, 9u);
  EXPECT_EQ(u.findings[0].region, 3u);
  EXPECT_EQ(u.findings[0].detail, 1u);
  EXPECT_TRUE(u.findings[0].retired);
  EXPECT_FALSE(u.findings[0].remapped);
  EXPECT_EQ(r.tests[1].outcome, WireDiagOutcome::kSkip);
}

TEST(AdminCodecTest, TailJobAndJobTokensRoundTripAndJobZeroIsRefused) {
  const auto tail = std::get<TailJob>(RoundTrip(TailJob{5, 1234567890123ull, 17}));
  EXPECT_EQ(tail.request_tag, 5u);
  EXPECT_EQ(tail.job_id, 1234567890123ull);
  EXPECT_EQ(tail.from_seq, 17u);
  const auto tokens = std::get<JobTokens>(RoundTrip(
      JobTokens{5, 99, 3, {7, 8, 9}, "abc", JobState::kFinished, 42, true, "length"}));
  EXPECT_EQ(tokens.job_id, 99u);
  EXPECT_EQ(tokens.seq, 3u);
  EXPECT_EQ(tokens.tokens, (std::vector<uint32_t>{7, 8, 9}));
  EXPECT_EQ(tokens.text, "abc");
  EXPECT_EQ(tokens.state, JobState::kFinished);
  EXPECT_EQ(tokens.tokens_generated, 42u);
  EXPECT_TRUE(tokens.finished);
  EXPECT_EQ(tokens.finish_reason, "length");
  const Refused e = Refusal(TailJob{6, 0, 0});
  EXPECT_EQ(e.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.request_tag, 6u);
  EXPECT_NE(e.detail.find("TailJob.job_id"), std::string::npos);
}

TEST(AdminCodecTest, FirmwareMessagesRoundTripEveryField) {
  EXPECT_EQ(std::get<FirmwareQuery>(RoundTrip(FirmwareQuery{1, 3})).board, 3u);
  FirmwareInfo info;
  info.request_tag = 2;
  info.board = 1;
  info.active_slot = 1;
  info.running_version = "waferfw-1.0.0";
  info.pending = true;
  info.pending_slot = 0;
  info.trial = true;
  info.fallback_slot = 0;
  info.signing_key = true;
  info.slots = {FirmwareSlotInfo{0, true, 28, 0xDEADBEEF, true, std::vector<uint8_t>(64, 9),
                                 "waferfw-1.0.0"},
                FirmwareSlotInfo{1, false, 0, 0, false, {}, ""}};
  const auto got = std::get<FirmwareInfo>(RoundTrip(info));
  EXPECT_EQ(got.board, 1u);
  EXPECT_EQ(got.active_slot, 1u);
  EXPECT_EQ(got.running_version, "waferfw-1.0.0");
  EXPECT_TRUE(got.pending);
  EXPECT_TRUE(got.trial);
  EXPECT_TRUE(got.signing_key);
  ASSERT_EQ(got.slots.size(), 2u);
  EXPECT_TRUE(got.slots[0].valid);
  EXPECT_EQ(got.slots[0].size, 28u);
  EXPECT_EQ(got.slots[0].crc32c, 0xDEADBEEFu);
  EXPECT_TRUE(got.slots[0].is_signed);
  EXPECT_EQ(got.slots[0].signature, std::vector<uint8_t>(64, 9));
  EXPECT_EQ(got.slots[0].version, "waferfw-1.0.0");
  EXPECT_FALSE(got.slots[1].valid);
  const auto update = std::get<UpdateFirmware>(
      RoundTrip(UpdateFirmware{4, 2, {1, 2, 3}, std::vector<uint8_t>(64, 5)}));
  EXPECT_EQ(update.board, 2u);
  EXPECT_EQ(update.image, (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(update.signature.size(), 64u);
  EXPECT_EQ(std::get<RollbackFirmware>(RoundTrip(RollbackFirmware{5, 3})).board, 3u);
}

}  // namespace
}  // namespace wafer::host
