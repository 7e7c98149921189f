#include "host/frontend/admin_frontend.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <tuple>
#include <type_traits>

#include "host/board/board_codec.h"
#include "host/wire/error_codes.h"
#include "host/wire/admin_codec.h"

namespace wafer::host {
namespace {

// An admin request as the audit log names it: its type, tag and the fields that say what it
// acts on.
std::string Describe(const AdminMessage& message) {
  return std::visit(
      [](const auto& m) -> std::string {
        using T = std::decay_t<decltype(m)>;
        std::string out;
        if constexpr (std::is_same_v<T, LoadModel>) {
          out = "LoadModel path=" + m.path + " name=" + m.name;
        } else if constexpr (std::is_same_v<T, UnloadModel>) {
          out = "UnloadModel name=" + m.name +
                (m.board < 0 ? "" : " board=" + std::to_string(m.board));
        } else if constexpr (std::is_same_v<T, Drain>) {
          out = "Drain";
        } else if constexpr (std::is_same_v<T, DrainBoard>) {
          out = std::string(m.undrain ? "UndrainBoard" : "DrainBoard") +
                " board=" + std::to_string(m.board) + (m.evacuate ? " evacuate" : "");
        } else if constexpr (std::is_same_v<T, ResetBoard>) {
          out = "ResetBoard board=" + std::to_string(m.board);
        } else if constexpr (std::is_same_v<T, InjectFault>) {
          out = "InjectFault board=" + std::to_string(m.board) + " kind=" + m.kind;
        } else if constexpr (std::is_same_v<T, RunDiagnostics>) {
          out = "RunDiagnostics board=" + std::to_string(m.board) +
                " level=" + std::to_string(m.level);
        } else if constexpr (std::is_same_v<T, ClearHealthIncident>) {
          out = "ClearHealthIncident board=" + std::to_string(m.board);
        } else if constexpr (std::is_same_v<T, CancelJobRequest>) {
          out = "CancelJob job=" + std::to_string(m.job_id);
        } else if constexpr (std::is_same_v<T, UpdateFirmware>) {
          out = "UpdateFirmware board=" + std::to_string(m.board) +
                " bytes=" + std::to_string(m.image.size());
        } else if constexpr (std::is_same_v<T, RollbackFirmware>) {
          out = "RollbackFirmware board=" + std::to_string(m.board);
        } else {
          out = "message #" + std::to_string(AdminMessage(m).index());
        }
        if constexpr (requires { m.request_tag; }) out += " tag=" + std::to_string(m.request_tag);
        return out;
      },
      message);
}

}  // namespace

AdminFrontend::AdminFrontend(zmq::context_t& context, const DaemonConfig& config,
                             const Clock& clock, const AccessPolicy& access, AuditLog& audit,
                             JobFrontend& job_frontend, JobStore& store, JobTable& jobs,
                             Scheduler& scheduler, StepLoop& steps, ModelManager& models,
                             BoardManager& boards, HealthMonitor& health,
                             telemetry::DaemonMetrics& metrics)
    : config_(config),
      clock_(clock),
      audit_(audit),
      start_ns_(clock.NowNanos()),
      job_frontend_(job_frontend),
      store_(store),
      jobs_(jobs),
      scheduler_(scheduler),
      steps_(steps),
      models_(models),
      boards_(boards),
      health_(health),
      socket_(context, "admin", kAdminZapDomain, access, metrics) {}

HostStatus AdminFrontend::Bind(const std::string& curve_secret_key) {
  return socket_.Bind(config_.admin_endpoint, config_, curve_secret_key);
}

void AdminFrontend::Pump(int burst) {
  ReleaseDurable();
  socket_.Pump(
      burst,
      [this](const std::string& peer, const ClientKeyConfig* key, std::span<const std::byte> p) {
        OnFrame(peer, key, p);
      },
      [this](const std::string& peer, const ErrorReply& refusal) { Send(peer, refusal); });
  PumpTails();
}

bool AdminFrontend::Send(const std::string& peer, const AdminMessage& message) {
  const std::string bytes = EncodeAdmin(message);
  return socket_.Send(peer, std::as_bytes(std::span<const char>(bytes)));
}

void AdminFrontend::SendProgress(const std::string& peer, const LoadProgress& progress) {
  Send(peer, progress);
}

bool AdminFrontend::CheckBoard(const std::string& peer, uint64_t tag, uint32_t board) {
  if (boards_.has(board)) return true;
  FinishOperation(peer, tag, InvalidArgument(),
                  "board " + std::to_string(board) + " is not configured", 0);
  return false;
}

void AdminFrontend::OnFrame(const std::string& peer, const ClientKeyConfig* key,
                            std::span<const std::byte> payload) {
  if (payload.size() > config_.max_message_bytes) {
    Send(peer, ErrorReply{ErrorCode::kMessageTooLarge,
                               "message exceeds max_message_bytes " +
                                   std::to_string(config_.max_message_bytes),
                               0});
    return;
  }
  uint64_t request_tag = 0;
  HostResult<AdminMessage> decoded = DecodeAdmin(payload, &request_tag);
  if (!decoded.ok()) {
    Send(peer, ErrorReply{DecodeErrorWireCode(decoded.code()), std::move(decoded).error().message,
                          request_tag});
    return;
  }
  AdminMessage& message = *decoded;
  // A viewer reads (status, board detail, logs, jobs) and changes nothing.
  const bool reads = std::holds_alternative<StatusQuery>(message) ||
                     std::holds_alternative<ShowBoard>(message) ||
                     std::holds_alternative<ReadBoardLog>(message) ||
                     std::holds_alternative<ListJobs>(message) ||
                     std::holds_alternative<ShowJob>(message) ||
                     std::holds_alternative<HealthQuery>(message) ||
                     std::holds_alternative<TailJob>(message) ||
                     std::holds_alternative<FirmwareQuery>(message) ||
                     std::holds_alternative<Heartbeat>(message);
  const std::string who = key != nullptr ? key->name : "anonymous";
  if (!reads) {
    audit_.Record(key != nullptr && key->role != "admin" ? "admin_denied" : "admin_action", who,
                  Describe(message),
                  key != nullptr && key->role != "admin" ? "PERMISSION_DENIED" : "requested");
  }
  if (key != nullptr && key->role != "admin" && !reads) {
    uint64_t tag = 0;
    std::visit(
        [&tag](const auto& m) {
          if constexpr (requires { m.request_tag; }) tag = m.request_tag;
        },
        message);
    Send(peer, OperationResult{tag, ErrorCode::kPermissionDenied,
                               "key '" + key->name + "' is a " + key->role +
                                   ": it may read status, boards, logs, jobs and health, and change "
                                   "nothing",
                               0});
    return;
  }
  if (auto* status = std::get_if<StatusQuery>(&message)) {
    OnStatus(peer, *status);
  } else if (auto* load = std::get_if<LoadModel>(&message)) {
    OnLoad(peer, *load);
  } else if (auto* unload = std::get_if<UnloadModel>(&message)) {
    OnUnload(peer, *unload);
  } else if (auto* drain = std::get_if<Drain>(&message)) {
    job_frontend_.StopAccepting();
    FinishOperation(peer, drain->request_tag, OkStatus(),
                    "draining: new jobs are refused, accepted ones run to completion", 0);
  } else if (auto* drain_board = std::get_if<DrainBoard>(&message)) {
    OnDrainBoard(peer, *drain_board);
  } else if (auto* reset = std::get_if<ResetBoard>(&message)) {
    OnReset(peer, *reset);
  } else if (auto* read = std::get_if<ReadBoardLog>(&message)) {
    OnReadBoardLog(peer, *read);
  } else if (auto* fault = std::get_if<InjectFault>(&message)) {
    OnInjectFault(peer, *fault);
  } else if (auto* show = std::get_if<ShowBoard>(&message)) {
    OnShowBoard(peer, *show);
  } else if (auto* list = std::get_if<ListJobs>(&message)) {
    OnListJobs(peer, *list);
  } else if (auto* show_job = std::get_if<ShowJob>(&message)) {
    OnShowJob(peer, *show_job);
  } else if (auto* cancel = std::get_if<CancelJobRequest>(&message)) {
    OnCancelJob(peer, *cancel);
  } else if (auto* health = std::get_if<HealthQuery>(&message)) {
    OnHealth(peer, *health);
  } else if (auto* clear = std::get_if<ClearHealthIncident>(&message)) {
    OnClearHealth(peer, *clear);
  } else if (auto* diag = std::get_if<RunDiagnostics>(&message)) {
    OnRunDiagnostics(peer, *diag);
  } else if (auto* tail = std::get_if<TailJob>(&message)) {
    OnTailJob(peer, *tail);
  } else if (auto* firmware = std::get_if<FirmwareQuery>(&message)) {
    OnFirmwareQuery(peer, *firmware);
  } else if (auto* update = std::get_if<UpdateFirmware>(&message)) {
    OnUpdateFirmware(peer, *update);
  } else if (auto* rollback = std::get_if<RollbackFirmware>(&message)) {
    OnRollbackFirmware(peer, *rollback);
  } else if (auto* beat = std::get_if<Heartbeat>(&message)) {
    if (!beat->is_reply) Send(peer, Heartbeat{beat->sent_ns, true});
  } else {
    Send(peer, ErrorReply{ErrorCode::kWrongMessageType,
                               "message type is daemon-to-client only", 0});
  }
}

void AdminFrontend::FinishOperation(const std::string& peer, uint64_t tag, Status status,
                             const std::string& detail, double elapsed_s) {
  if (peer.empty()) return;  // Started by the config file, not by a client.
  audit_.Record("operation_done", "-", "tag=" + std::to_string(tag),
                std::string(status.name()) + (detail.empty() ? "" : ": " + detail));
  Send(peer, OperationResult{tag, ErrorCodeFor(status, ErrorCode::kInvalidArgument), detail, elapsed_s});
}

BoardInfo AdminFrontend::InfoOf(const Board& b) const {
  BoardInfo info;
  info.index = b.index;
  info.endpoint = b.config.endpoint;
  info.state = b.state;
  info.board_id = b.identity.board_id;
  info.preset = b.identity.preset;
  info.firmware_version = b.identity.firmware_version;
  info.usable_pes = uint64_t{b.identity.fabric_width} * b.identity.fabric_height;
  info.sram_bytes = b.telemetry.sram_total_bytes;
  info.sram_used_bytes = b.telemetry.sram_used_bytes;
  for (float t : b.telemetry.region_temp_c) info.max_temperature_c = std::max(info.max_temperature_c, t);
  info.power_w = b.telemetry.power_w;
  info.steps = b.steps;
  info.drain = b.drain.Describe();
  info.region_temp_c = b.telemetry.region_temp_c;
  info.busy_s = static_cast<double>(b.BusyNanos(clock_.NowNanos())) / 1e9;
  info.tokens_generated = b.tokens_generated;
  return info;
}

void AdminFrontend::OnStatus(const std::string& peer, const StatusQuery& query) {
  StatusReply r;
  r.request_tag = query.request_tag;
  r.version = kWaferdVersion;
  r.uptime_s = static_cast<double>(clock_.NowNanos() - start_ns_) / 1e9;
  for (uint32_t i = 0; i < boards_.size(); ++i) r.boards.push_back(InfoOf(boards_.at(i)));
  // One entry per replica: a model loaded as several replicas is listed once per replica,
  // each with its boards and its own running jobs.
  for (const auto& [replica, m] : models_.models()) {
    r.models.push_back(ModelInfo{m->name, m->path, m->state, m->boards[0], m->parameters,
                                 m->weight_bytes, m->context_length, m->slots,
                                 scheduler_.ReplicaSlots(m->name, replica).running, m->boards});
  }
  r.jobs_queued = static_cast<uint32_t>(scheduler_.queued());
  r.jobs_running = static_cast<uint32_t>(scheduler_.running());
  r.jobs_finished = jobs_.finished_count();
  r.tokens_generated = jobs_.tokens_streamed();
  r.draining = !job_frontend_.accepting();
  r.job_endpoint = job_frontend_.endpoint();
  r.metrics_url = metrics_url_;
  // Queues by class, once per model name.
  const std::vector<PriorityClassConfig>& classes = config_.scheduling.classes;
  for (const auto& [replica, m] : models_.models()) {
    if (std::any_of(r.queues.begin(), r.queues.end(),
                    [&](const ModelQueue& q) { return q.model == m->name; })) {
      continue;
    }
    ModelQueue queue{m->name, {}};
    for (uint32_t cls = 0; cls < classes.size(); ++cls) {
      queue.classes.push_back(ClassQueue{
          classes[cls].name, static_cast<uint32_t>(scheduler_.QueuedInClass(m->name, cls))});
    }
    r.queues.push_back(std::move(queue));
  }
  // Tenants: those with jobs under way, then those that generated the most.
  std::map<std::string, TenantActivity> tenants;
  jobs_.ForEachUnfinished([&](JobRecord& job) {
    TenantActivity& t = tenants[job.tenant];
    (job.state == JobState::kRunning ? t.running : t.queued) += 1;
  });
  for (const auto& [tenant, tokens] : jobs_.tokens_by_tenant()) {
    tenants[tenant].tokens_generated = tokens;
  }
  for (auto& [name, t] : tenants) {
    t.tenant = name;
    r.tenants.push_back(std::move(t));
  }
  std::sort(r.tenants.begin(), r.tenants.end(),
            [](const TenantActivity& a, const TenantActivity& b) {
              return std::make_tuple(a.running + a.queued > 0, a.running, a.queued,
                                     a.tokens_generated) >
                     std::make_tuple(b.running + b.queued > 0, b.running, b.queued,
                                     b.tokens_generated);
            });
  if (r.tenants.size() > kMaxStatusTenants) r.tenants.resize(kMaxStatusTenants);
  Send(peer, r);
}

bool AdminFrontend::UnderModelRoots(const std::string& peer, uint64_t tag,
                                    const std::string& path) {
  const std::vector<std::string>& roots = config_.security.model_roots;
  if (roots.empty()) return true;
  std::error_code ec;
  // Resolved: "..", and symbolic links, cannot lead out of a root.
  const std::filesystem::path real = std::filesystem::canonical(path, ec);
  if (!ec) {
    for (const std::string& root : roots) {
      const std::filesystem::path base = std::filesystem::weakly_canonical(root, ec);
      if (ec) continue;
      const auto [end, _] = std::mismatch(base.begin(), base.end(), real.begin(), real.end());
      if (end == base.end()) return true;
    }
  }
  FinishOperation(peer, tag, PermissionDenied(),
                  "path " + path + " is not under a configured model root", 0);
  return false;
}

void AdminFrontend::OnLoad(const std::string& peer, const LoadModel& load) {
  if (load.path.empty()) {
    return FinishOperation(peer, load.request_tag, InvalidArgument(), "path is required", 0);
  }
  if (!UnderModelRoots(peer, load.request_tag, load.path)) return;
  LoadRequest request;
  request.admin_tag = load.request_tag;
  request.admin_peer = peer;
  request.name = load.name;
  request.path = load.path;
  request.boards = load.boards.empty() ? std::vector<uint32_t>{load.board} : load.boards;
  request.slots = load.slots == 0 ? config_.default_slots : load.slots;
  request.context_length = load.context_length;
  models_.StartLoad(std::move(request));  // Checks the boards.
}

void AdminFrontend::OnUnload(const std::string& peer, const UnloadModel& unload) {
  const std::vector<ModelRecord*> replicas = models_.Replicas(unload.name);
  const bool going = std::all_of(replicas.begin(), replicas.end(), [](const ModelRecord* m) {
    return m->state == ModelState::kUnloading;
  });
  if (replicas.empty() || going) {
    Send(peer, OperationResult{unload.request_tag, ErrorCode::kUnknownModel,
                                    "model '" + unload.name + "' is not loaded", 0});
    return;
  }
  const HostStatus s = models_.BeginUnload(unload.name, unload.board, peer, unload.request_tag);
  if (s.code() == StatusCode::kNotFound) {  // No replica on that board.
    Send(peer, OperationResult{unload.request_tag, ErrorCode::kUnknownModel, s.error().message, 0});
  } else if (!s.ok()) {
    FinishOperation(peer, unload.request_tag, s.status(), s.error().message, 0);
  }
}

void AdminFrontend::OnReset(const std::string& peer, const ResetBoard& reset) {
  if (!CheckBoard(peer, reset.request_tag, reset.board)) return;
  models_.ResetBoard(reset.board, peer, reset.request_tag);
}

void AdminFrontend::OnDrainBoard(const std::string& peer, const DrainBoard& drain) {
  if (!CheckBoard(peer, drain.request_tag, drain.board)) return;
  if (drain.undrain) {
    boards_.Undrain(drain.board, DrainReason::kOperator);
  } else {
    boards_.Drain(drain.board, DrainReason::kOperator,
                  drain.evacuate ? DrainMode::kEvacuate : DrainMode::kGraceful);
  }
  const std::string left = boards_.at(drain.board).drain.Describe();
  FinishOperation(peer, drain.request_tag, OkStatus(),
                  "board " + std::to_string(drain.board) +
                      (left.empty() ? " takes work" : " drained: " + left),
                  0);
}

void AdminFrontend::OnReadBoardLog(const std::string& peer, const ReadBoardLog& read) {
  if (!CheckBoard(peer, read.request_tag, read.board)) return;
  boards_.Send(read.board,
               std::make_unique<WorkerRequest>(LogsWork{read.request_tag, peer, read.from_sequence}));
}

void AdminFrontend::OnInjectFault(const std::string& peer, const InjectFault& fault) {
  static const std::pair<const char*, BoardFaultKind> kKinds[] = {
      {"pe_stop", BoardFaultKind::kPeStop},
      {"ecc_correctable", BoardFaultKind::kEccCorrectable},
      {"ecc_uncorrectable", BoardFaultKind::kEccUncorrectable},
      {"link_crc", BoardFaultKind::kLinkCrc},
      {"thermal_runaway", BoardFaultKind::kThermalRunaway},
      {"power_cap", BoardFaultKind::kPowerCap},
      {"firmware_hang", BoardFaultKind::kFirmwareHang},
      {"process_crash", BoardFaultKind::kProcessCrash},
      {"sram_stuck_bit", BoardFaultKind::kSramStuckBit},
      {"fabric_link", BoardFaultKind::kFabricLink},
  };
  if (!CheckBoard(peer, fault.request_tag, fault.board)) return;
  FaultWork work{fault.request_tag, peer, {}};
  for (const auto& [name, kind] : kKinds) {
    if (fault.kind == name) work.fault.kind = kind;
  }
  if (work.fault.kind == BoardFaultKind::kNone) {
    return FinishOperation(peer, fault.request_tag, InvalidArgument(),
                           "unknown fault kind '" + fault.kind + "'", 0);
  }
  work.fault.region = fault.region;
  work.fault.row = fault.row;
  work.fault.pe = fault.pe;
  work.fault.value = fault.value;
  boards_.Send(fault.board, std::make_unique<WorkerRequest>(std::move(work)));
}

void AdminFrontend::OnShowBoard(const std::string& peer, const ShowBoard& show) {
  if (!CheckBoard(peer, show.request_tag, show.board)) return;
  boards_.Send(show.board, std::make_unique<WorkerRequest>(GeometryWork{show.request_tag, peer}));
}

void AdminFrontend::OnGeometryDone(const Board& board, GeometryDone& done) {
  if (!done.status.ok()) {
    return FinishOperation(done.admin_peer, done.admin_tag, done.status, done.detail, 0);
  }
  const BoardIdentity& id = done.identity;
  const BoardHarvestMap& h = done.harvest;
  const BoardTelemetry& t = done.telemetry;
  BoardDetail d;
  d.request_tag = done.admin_tag;
  d.info = InfoOf(board);
  d.physical_rows = h.physical_rows;
  d.physical_cols = h.physical_cols;
  d.spare_cols_per_row = h.spare_cols_per_row;
  d.usable_width = h.usable_width;
  d.usable_height = h.usable_height;
  d.healthy_pes = id.healthy_pes;
  d.spare_pes = id.spare_pes;
  d.failed_pes = id.failed_pes;
  d.row_failed = h.row_failed;
  d.dropped_rows = h.dropped_rows;
  d.runtime_remaps = h.runtime_remaps;
  d.region_temp_c = t.region_temp_c;
  d.region_clock_hz = t.region_clock_hz;
  d.core_power_w = t.core_power_w;
  d.sram_power_w = t.sram_power_w;
  d.io_power_w = t.io_power_w;
  d.coolant_in_c = t.coolant_in_c;
  d.coolant_out_c = t.coolant_out_c;
  d.throttled = t.throttled;
  d.thermal_trip = t.thermal_trip;
  d.ecc_correctable = t.ecc_correctable;
  d.ecc_uncorrectable = t.ecc_uncorrectable;
  Send(done.admin_peer, d);
}

void AdminFrontend::OnLogsDone(const Board& board, LogsDone& done) {
  if (!done.status.ok()) {
    return FinishOperation(done.admin_peer, done.admin_tag, done.status, done.detail, 0);
  }
  static constexpr const char* kSeverity[] = {"info", "warning", "error", "fatal"};
  BoardLogReply reply{done.admin_tag, board.index, {}, done.log.next_sequence,
                      done.log.dropped_count};
  for (const BoardLogRecord& r : done.log.records) {
    const size_t severity = static_cast<size_t>(r.severity);
    std::string code = BoardLogCodeName(r.code);
    if (code.empty()) code = "CODE_" + std::to_string(r.code);  // From a newer firmware.
    reply.records.push_back(BoardLogEntry{r.sequence, r.timestamp_ns,
                                          severity < 4 ? kSeverity[severity] : "unknown",
                                          std::move(code), r.args});
  }
  Send(done.admin_peer, reply);
}

}  // namespace wafer::host
