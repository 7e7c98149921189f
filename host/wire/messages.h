// Plain structs for the job and admin protocols. Only job_codec.cc and admin_codec.cc include the
// generated FlatBuffers headers; the daemon, the client library and waferctl see these.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/sampling.h"
#include "common/status.h"

namespace wafer::host {

// The protocol version this build speaks; a different major version is refused.
inline constexpr uint16_t kProtocolMajor = 1;
// Minor 3: health (HealthQuery, HealthReply, ClearHealthIncident), replicas in Capacity.
// Minor 4: diagnostics (RunDiagnostics, DiagnosticProgress, DiagnosticReport).
// Minor 5: waferctl top's figures (BoardInfo region temperatures, busy time, tokens; StatusReply
// queues by class and tenants), jobs tail (TailJob, JobTokens) and firmware slots
// (FirmwareQuery, FirmwareInfo, UpdateFirmware, RollbackFirmware).
inline constexpr uint16_t kProtocolMinor = 5;

// Same values as common.fbs ErrorCode.
enum class ErrorCode : uint16_t {
  kNone = 0,
  kMalformedMessage = 1,
  kUnsupportedVersion = 2,
  kWrongMessageType = 3,
  kUnknownModel = 4,
  kPromptTooLong = 5,
  kInvalidMaxTokens = 6,
  kInvalidSampling = 7,
  kQueueFull = 8,
  kDraining = 9,
  kUnknownJob = 10,
  kInvalidArgument = 11,
  kModelNotReady = 12,
  kBoardUnavailable = 13,
  kDeadlineExceeded = 14,
  kInternal = 15,
  kResourceExhausted = 16,
  kDataLoss = 17,
  kFailedPrecondition = 18,
  kUnimplemented = 19,
  kCancelled = 20,
  kAlreadyExists = 21,
  kMessageTooLarge = 22,
  kOutOfRange = 23,
  kPermissionDenied = 24,
  kIdempotencyConflict = 25,
  kStorageUnavailable = 26,
  kQuotaExceeded = 27,
  kTargetUnmeetable = 28,
};

// "UNKNOWN_MODEL" style names, for logs, CLI output and metric labels.
const char* ErrorCodeName(ErrorCode code);

// A frame the job or admin decoder refused comes back as an Error (common/error.h) whose message
// is the ErrorReply's detail and whose code stands for the wire code to answer with:
//   DATA_LOSS           - MALFORMED_MESSAGE (truncated, garbage, wrong identifier, a missing
//                         field, failed verification).
//   FAILED_PRECONDITION - UNSUPPORTED_VERSION (another major protocol version).
//   UNIMPLEMENTED       - WRONG_MESSAGE_TYPE (an empty union or a type this build lacks).
//   INVALID_ARGUMENT    - INVALID_ARGUMENT (a field out of its bounds).
// DecodeErrorStatus gives the code for a wire code (MALFORMED_MESSAGE's for any other);
// DecodeErrorWireCode the wire code for a decoder's Error (MALFORMED_MESSAGE for any other).
StatusCode DecodeErrorStatus(ErrorCode wire_code);
ErrorCode DecodeErrorWireCode(StatusCode code);

struct Heartbeat {
  int64_t sent_ns = 0;
  bool is_reply = false;
};

struct ErrorReply {
  ErrorCode code = ErrorCode::kNone;
  std::string detail;
  uint64_t request_tag = 0;
};

// ---- job socket ----

struct SubmitJob {
  uint64_t request_tag = 0;
  std::string idempotency_key;
  std::string tenant;
  std::string model;
  std::string prompt_text;
  std::vector<uint32_t> prompt_tokens;
  uint32_t max_tokens = 0;
  Sampling sampling;  // job.fbs Sampling, decoded into the common type.
  uint8_t priority = 0;
  uint64_t deadline_unix_ms = 0;
  uint32_t ttft_target_ms = 0;
  std::vector<uint32_t> stop_tokens;
  bool want_text = true;
  uint32_t deadline_ms = 0;  // Relative to receipt; 0: none.
};

struct JobAccepted {
  uint64_t request_tag = 0;
  uint64_t job_id = 0;
  uint32_t queue_position = 0;
  bool duplicate = false;
  uint64_t instance_id = 0;  // Stamped by the job socket on the way out.
};

struct JobRejected {
  uint64_t request_tag = 0;
  ErrorCode code = ErrorCode::kNone;
  std::string detail;
  uint32_t retry_after_ms = 0;
};

struct TokenChunk {
  uint64_t job_id = 0;
  uint32_t seq = 0;
  uint32_t first_token_index = 0;
  std::vector<uint32_t> tokens;
  std::string text;
  uint64_t instance_id = 0;
};

enum class FinishReason : uint8_t {
  kLength, kStopToken, kCancelled, kDeadlineExceeded, kError, kContextFull, kAbandoned,
  kPoison, kShed,
};
const char* FinishReasonName(FinishReason reason);

struct JobTimings {
  int64_t queued_ns = 0;
  int64_t ttft_ns = 0;
  int64_t total_ns = 0;
  int64_t device_ns = 0;
};

struct JobFinished {
  uint64_t job_id = 0;
  FinishReason reason = FinishReason::kLength;
  uint32_t prompt_tokens = 0;
  uint32_t completion_tokens = 0;
  JobTimings timings;
  uint32_t chunks = 0;
  ErrorCode error_code = ErrorCode::kNone;
  std::string detail;
  uint64_t instance_id = 0;
};

struct CancelJob {
  uint64_t job_id = 0;
};

struct CancelResult {
  uint64_t job_id = 0;
  ErrorCode code = ErrorCode::kNone;
  uint64_t instance_id = 0;
};

enum class JobState : uint8_t { kUnknown, kQueued, kRunning, kFinished };
const char* JobStateName(JobState state);

struct JobStatusQuery {
  uint64_t job_id = 0;
};

struct JobStatusReply {
  uint64_t job_id = 0;
  JobState state = JobState::kUnknown;
  uint32_t tokens_generated = 0;
  uint32_t queue_position = 0;
  uint64_t instance_id = 0;
};

struct ResumeStream {
  uint64_t job_id = 0;
  uint32_t from_seq = 0;
  uint64_t instance_id = 0;  // 0: not checked.
};

struct CapacityQuery {
  uint64_t request_tag = 0;
};

struct ClassCapacity {
  std::string name;
  uint32_t queued = 0;
  uint32_t expected_wait_ms = 0;
  bool measured = false;
};

struct ReplicaCapacity {
  std::vector<uint32_t> boards;
  uint32_t free_slots = 0;
  uint32_t total_slots = 0;
  uint32_t running = 0;
  bool serving = false;
};

struct ModelCapacity {
  std::string name;
  uint32_t free_slots = 0;
  uint32_t total_slots = 0;
  uint32_t context_length = 0;
  bool ready = false;
  std::vector<ClassCapacity> classes;  // Highest first.
  std::vector<ReplicaCapacity> replicas;  // In load order.
};

struct BoardCapacity {
  uint32_t board = 0;
  uint8_t health = 0;  // 0 PASS, 1 WARN, 2 FAIL.
  bool drained = false;
  std::string drain;
  uint16_t incident_code = 0;
  std::string incident;
};

struct CapacityReply {
  uint64_t request_tag = 0;
  std::vector<ModelCapacity> models;
  uint32_t queue_depth = 0;
  uint32_t queue_limit = 0;
  bool healthy = false;
  bool draining = false;
  std::vector<BoardCapacity> boards;
};

using JobMessage =
    std::variant<SubmitJob, JobAccepted, JobRejected, TokenChunk, JobFinished, CancelJob,
                 CancelResult, JobStatusQuery, JobStatusReply, ResumeStream, CapacityQuery,
                 CapacityReply, Heartbeat, ErrorReply>;

// ---- admin socket ----

enum class BoardState : uint8_t { kOffline, kBooting, kReady, kFaulted, kResetting };
const char* BoardStateName(BoardState state);

enum class ModelState : uint8_t { kLoading, kReady, kUnloading, kFailed };
const char* ModelStateName(ModelState state);

struct StatusQuery {
  uint64_t request_tag = 0;
};

struct BoardInfo {
  uint32_t index = 0;
  std::string endpoint;
  BoardState state = BoardState::kOffline;
  std::string board_id;
  std::string preset;
  std::string firmware_version;
  uint64_t usable_pes = 0;
  uint64_t sram_bytes = 0;
  uint64_t sram_used_bytes = 0;
  float max_temperature_c = 0;
  float power_w = 0;
  uint64_t steps = 0;
  std::string drain;  // The reasons in force, with modes; empty when not drained.
  std::vector<float> region_temp_c;  // Per die region, as last read.
  double busy_s = 0;                 // Wall seconds with a Step in flight, since start.
  uint64_t tokens_generated = 0;     // Sampled on this board since start.
};

struct ModelInfo {
  std::string name;
  std::string path;
  ModelState state = ModelState::kLoading;
  uint32_t board = 0;
  uint64_t parameters = 0;
  uint64_t weight_bytes = 0;
  uint32_t context_length = 0;
  uint32_t slots = 0;
  uint32_t slots_used = 0;
  std::vector<uint32_t> boards;  // Pipeline order; `board` is the first.
};

struct ClassQueue {
  std::string name;
  uint32_t queued = 0;
};

struct ModelQueue {
  std::string model;
  std::vector<ClassQueue> classes;  // Class order.
};

struct TenantActivity {
  std::string tenant;
  uint32_t queued = 0;
  uint32_t running = 0;
  uint64_t tokens_generated = 0;  // Since the daemon started.
};

struct StatusReply {
  uint64_t request_tag = 0;
  std::string version;
  double uptime_s = 0;
  std::vector<BoardInfo> boards;
  std::vector<ModelInfo> models;
  uint32_t jobs_queued = 0;
  uint32_t jobs_running = 0;
  uint64_t jobs_finished = 0;
  uint64_t tokens_generated = 0;
  bool draining = false;
  std::string job_endpoint;
  std::string metrics_url;
  std::vector<ModelQueue> queues;
  std::vector<TenantActivity> tenants;  // Busiest first, at most kMaxStatusTenants.
};

// StatusReply.tenants holds at most this many.
inline constexpr size_t kMaxStatusTenants = 32;

struct LoadModel {
  uint64_t request_tag = 0;
  std::string name;
  std::string path;
  uint32_t board = 0;
  uint32_t slots = 0;
  uint32_t context_length = 0;
  std::vector<uint32_t> boards;  // A model split over several boards, in pipeline order.
};

struct LoadProgress {
  uint64_t request_tag = 0;
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  double bytes_per_second = 0;
  double eta_s = 0;
  std::string phase;
};

struct UnloadModel {
  uint64_t request_tag = 0;
  std::string name;
  int32_t board = -1;  // -1: every replica; otherwise the replica whose first board it is.
};

struct Drain {
  uint64_t request_tag = 0;
};

// See DrainBoard in admin.fbs.
struct DrainBoard {
  uint64_t request_tag = 0;
  uint32_t board = 0;
  bool evacuate = false;
  bool undrain = false;
};

struct ResetBoard {
  uint64_t request_tag = 0;
  uint32_t board = 0;
};

struct OperationResult {
  uint64_t request_tag = 0;
  ErrorCode code = ErrorCode::kNone;
  std::string detail;
  double elapsed_s = 0;
};

struct ReadBoardLog {
  uint64_t request_tag = 0;
  uint32_t board = 0;
  uint64_t from_sequence = 0;
};

struct BoardLogEntry {
  uint64_t sequence = 0;
  int64_t timestamp_ns = 0;
  std::string severity;
  std::string code;
  std::vector<uint64_t> args;
};

struct BoardLogReply {
  uint64_t request_tag = 0;
  uint32_t board = 0;
  std::vector<BoardLogEntry> records;
  uint64_t next_sequence = 0;
  uint64_t dropped = 0;
};

struct InjectFault {
  uint64_t request_tag = 0;
  uint32_t board = 0;
  std::string kind;  // See admin.fbs InjectFault.
  uint32_t region = 0;
  uint32_t row = 0;
  uint32_t pe = 0;
  double value = 0;
};

struct ShowBoard {
  uint64_t request_tag = 0;
  uint32_t board = 0;
};

struct BoardDetail {
  uint64_t request_tag = 0;
  BoardInfo info;
  uint32_t physical_rows = 0;
  uint32_t physical_cols = 0;
  uint32_t spare_cols_per_row = 0;
  uint32_t usable_width = 0;
  uint32_t usable_height = 0;
  uint64_t healthy_pes = 0;
  uint64_t spare_pes = 0;
  uint64_t failed_pes = 0;
  std::vector<uint16_t> row_failed;
  std::vector<uint32_t> dropped_rows;
  uint64_t runtime_remaps = 0;
  std::vector<float> region_temp_c;
  std::vector<double> region_clock_hz;
  float core_power_w = 0;
  float sram_power_w = 0;
  float io_power_w = 0;
  float coolant_in_c = 0;
  float coolant_out_c = 0;
  bool throttled = false;
  bool thermal_trip = false;
  uint64_t ecc_correctable = 0;
  uint64_t ecc_uncorrectable = 0;
};

// ---- jobs over the admin socket (see admin.fbs ListJobs, ShowJob, CancelJobRequest) ----

// Which jobs ListJobs returns; same values as admin.fbs JobStateFilter.
enum class JobStateFilter : uint8_t { kUnfinished, kQueued, kRunning, kFinished, kAll };

// ListJobs.limit: 0 asks for the default; above the maximum the request is INVALID_ARGUMENT.
inline constexpr uint32_t kDefaultJobListLimit = 100;
inline constexpr uint32_t kMaxJobListLimit = 10000;
// Longest ListJobs.tenant filter (as long as a tenant name may be).
inline constexpr uint32_t kMaxJobTenantFilterBytes = 256;

struct ListJobs {
  uint64_t request_tag = 0;
  std::string tenant;  // Empty: every tenant.
  JobStateFilter state = JobStateFilter::kUnfinished;
  uint32_t limit = 0;  // 0: kDefaultJobListLimit.
};

struct JobSummary {
  uint64_t job_id = 0;
  std::string tenant;
  std::string model;
  JobState state = JobState::kUnknown;
  std::string priority_class;  // The class's name.
  uint8_t priority = 0;
  uint32_t queue_position = 0;  // Jobs ahead of it while queued; 0 otherwise.
  uint64_t age_ms = 0;          // Since acceptance.
  uint32_t tokens_generated = 0;
  std::string finish_reason;  // FinishReasonName of its ending; empty until finished.
};

// Queued jobs by queue position, then running, then finished (newest first).
struct JobList {
  uint64_t request_tag = 0;
  std::vector<JobSummary> jobs;
  uint32_t total = 0;  // Jobs that matched, returned or not.
  bool truncated = false;
};

struct ShowJob {
  uint64_t request_tag = 0;
  uint64_t job_id = 0;
};

// Times from acceptance, "so far" while unfinished (see admin.fbs JobDetail).
struct JobDetail {
  uint64_t request_tag = 0;
  JobSummary summary;
  uint32_t prompt_tokens = 0;
  uint32_t max_tokens = 0;
  int64_t accepted_unix_ms = 0;
  uint64_t deadline_unix_ms = 0;  // 0: none.
  uint32_t ttft_target_ms = 0;    // 0: none.
  bool first_token = false;
  int64_t ttft_ns = 0;  // To the first token; without one, waited so far (0 once finished).
  int64_t queued_ns = 0;
  int64_t total_ns = 0;
  int64_t device_ns = 0;
  uint32_t chunks = 0;
  bool cancel_requested = false;
  ErrorCode error_code = ErrorCode::kNone;
  std::string detail;
};

// The admin socket's cancel (admin role); answered by OperationResult.
struct CancelJobRequest {
  uint64_t request_tag = 0;
  uint64_t job_id = 0;
};

// ---- board health (admin.fbs HealthQuery .. ClearHealthIncident) ----

enum class WireHealthLevel : uint8_t { kPass = 0, kWarn = 1, kFail = 2 };

struct HealthQuery {
  uint64_t request_tag = 0;
  int32_t board = -1;  // -1: every board.
};

struct HealthRuleState {
  std::string rule;
  WireHealthLevel level = WireHealthLevel::kPass;
  uint16_t code = 0;
  std::string code_name;
  std::string message;
  std::string action;
};

struct HealthIncidentInfo {
  uint64_t id = 0;
  uint32_t board = 0;
  uint16_t code = 0;
  std::string code_name;
  std::string message;
  std::string state;  // drained | recovering | quarantined | closed
  int64_t opened_unix_ms = 0;
  int64_t closed_unix_ms = 0;
  uint32_t recoveries = 0;
  std::string last_action;
  std::string action;
};

struct BoardHealthInfo {
  uint32_t board = 0;
  WireHealthLevel level = WireHealthLevel::kPass;
  bool evaluated = false;
  std::vector<HealthRuleState> rules;
  std::optional<HealthIncidentInfo> open;
  std::vector<HealthIncidentInfo> closed;  // Newest first.
  std::string drain;
};

struct HealthReply {
  uint64_t request_tag = 0;
  std::vector<BoardHealthInfo> boards;
};

// Admin role; answered by OperationResult.
struct ClearHealthIncident {
  uint64_t request_tag = 0;
  uint32_t board = 0;
};

// ---- diagnostics (admin.fbs RunDiagnostics .. DiagnosticReport) ----

enum class WireDiagOutcome : uint8_t { kPass = 0, kWarn = 1, kFail = 2, kSkip = 3 };

// Admin role. Answered by DiagnosticProgress messages, then a DiagnosticReport (or an
// OperationResult when refused).
struct RunDiagnostics {
  uint64_t request_tag = 0;
  uint32_t board = 0;
  uint32_t level = 1;
};

struct DiagnosticProgress {
  uint64_t request_tag = 0;
  uint32_t board = 0;
  std::string test;
  uint64_t done = 0;
  uint64_t total = 0;
};

struct DiagnosticFinding {
  uint32_t row = 0;
  uint32_t pe = 0;
  uint32_t region = 0;
  uint64_t detail = 0;
  bool retired = false;
  bool remapped = false;
};

struct DiagnosticTest {
  std::string name;
  WireDiagOutcome outcome = WireDiagOutcome::kPass;
  uint16_t code = 0;
  std::string code_name;
  std::string message;
  std::string action;
  uint64_t units_tested = 0;
  uint64_t failures = 0;
  std::vector<DiagnosticFinding> findings;
  uint64_t retired = 0;
  double elapsed_s = 0;
  int64_t device_ns = 0;
};

struct DiagnosticReport {
  uint64_t request_tag = 0;
  uint32_t board = 0;
  uint32_t level = 1;
  WireDiagOutcome outcome = WireDiagOutcome::kPass;
  std::vector<DiagnosticTest> tests;
  uint64_t pes_retired = 0;
  double elapsed_s = 0;
};

// Follows a job's chunks (admin.fbs TailJob); answered by JobTokens.
struct TailJob {
  uint64_t request_tag = 0;
  uint64_t job_id = 0;
  uint32_t from_seq = 0;
};

// Most tails the daemon follows at once; more are RESOURCE_EXHAUSTED.
inline constexpr size_t kMaxJobTails = 64;

struct JobTokens {
  uint64_t request_tag = 0;
  uint64_t job_id = 0;
  uint32_t seq = 0;  // The chunk's; without tokens, the next one expected.
  std::vector<uint32_t> tokens;
  std::string text;
  JobState state = JobState::kUnknown;
  uint32_t tokens_generated = 0;
  bool finished = false;
  std::string finish_reason;
};

struct FirmwareQuery {
  uint64_t request_tag = 0;
  uint32_t board = 0;
};

struct FirmwareSlotInfo {
  uint32_t slot = 0;
  bool valid = false;
  uint64_t size = 0;
  uint32_t crc32c = 0;
  bool is_signed = false;
  std::vector<uint8_t> signature;  // 64 bytes, or empty.
  std::string version;             // From the image's header; empty when it names none.
};

struct FirmwareInfo {
  uint64_t request_tag = 0;
  uint32_t board = 0;
  uint32_t active_slot = 0;
  std::string running_version;
  bool pending = false;
  uint32_t pending_slot = 0;
  bool trial = false;
  uint32_t fallback_slot = 0;
  bool signing_key = false;
  std::vector<FirmwareSlotInfo> slots;
};

struct UpdateFirmware {
  uint64_t request_tag = 0;
  uint32_t board = 0;
  std::vector<uint8_t> image;
  std::vector<uint8_t> signature;
};

struct RollbackFirmware {
  uint64_t request_tag = 0;
  uint32_t board = 0;
};

using AdminMessage =
    std::variant<StatusQuery, StatusReply, LoadModel, LoadProgress, UnloadModel, Drain, ResetBoard,
                 OperationResult, Heartbeat, ErrorReply, ReadBoardLog, BoardLogReply, InjectFault,
                 ShowBoard, BoardDetail, DrainBoard, ListJobs, JobList, ShowJob, JobDetail,
                 CancelJobRequest, HealthQuery, HealthReply, ClearHealthIncident, RunDiagnostics,
                 DiagnosticProgress, DiagnosticReport, TailJob, JobTokens, FirmwareQuery,
                 FirmwareInfo, UpdateFirmware, RollbackFirmware>;

}  // namespace wafer::host
