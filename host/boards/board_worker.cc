#include "host/boards/board_worker.h"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "common/crc32c.h"
#include "common/log/log.h"
#include "common/net/owned_channel.h"
#include "host/board/board_link.h"
#include "host/boards/worker_messages.h"
#include "host/loader/stage_session.h"

namespace wafer::host {
namespace {

constexpr int64_t kTelemetryPeriodNs = 1'000'000'000;
constexpr int64_t kReconnectPeriodNs = 2'000'000'000;
constexpr int64_t kProgressPeriodNs = 100'000'000;
// While a resident model is stepping (a Step came within this long), a stage under way writes
// one chunk per request the worker handles: it waits up to this long for the next Step before
// the next chunk. A board with no Steps coming stages at full speed.
constexpr int64_t kStepPacingNs = 250'000'000;

double Seconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }

// Drives one board. Not thread-safe; lives on the worker thread.
class Driver {
 public:
  Driver(const BoardLinkFactory& link_factory, const Clock& clock, uint32_t index,
         const BoardConfig& config, net::Socket& channel, const std::atomic<bool>& stop)
      : link_factory_(link_factory),
        clock_(clock),
        index_(index),
        config_(config),
        channel_(channel),
        stop_(stop) {}

  // Connects and boots when not yet online; reports the outcome.
  void EnsureOnline() {
    if (link_ && online_) return;
    int64_t now = clock_.NowNanos();
    if (last_attempt_ns_ != 0 && now - last_attempt_ns_ < kReconnectPeriodNs) return;
    last_attempt_ns_ = now;
    if (!link_) {
      auto link = link_factory_(config_);
      if (!link.ok()) {
        Report(false, BoardBootState::kPowerOn, "cannot connect to " + config_.endpoint);
        return;
      }
      link_ = std::move(link).value();
    }
    auto identity = link_->Identify();
    if (!identity.ok()) {
      // A hung firmware answers nothing but Reset (the board's reset line): pull it once. When
      // the Reset fails too, its Error is the one reported.
      HostStatus reset = link_->Reset();
      identity = reset.ok() ? link_->Identify() : std::move(reset).error();
    }
    if (!identity.ok()) {
      Report(false, BoardBootState::kPowerOn, "identify failed: " + identity.error().message);
      return;
    }
    identity_ = *identity;
    // A board process that restarted numbers its fault reports from the start again: read on
    // from there, or a repair would skip the report it needs.
    if (auto faults = link_->ReadFaults(UINT64_MAX); faults.ok()) {
      next_fault_sequence_ = std::min(next_fault_sequence_, faults->next_sequence);
    }
    if (!claimed_) {
      // First contact since this daemon started: SRAM already in use belongs to models no one
      // here knows (a previous waferd's, which crashed or was stopped without unloading). Their
      // ids would collide with ours and their PEs are not in our row bookkeeping: reset the
      // board to reclaim it. Later reconnects (a link that timed out) keep our own models.
      auto t = link_->ReadTelemetry();
      if (!t.ok()) {
        Report(false, BoardBootState::kPowerOn, "telemetry read failed: " + t.error().message);
        return;
      }
      claimed_ = true;
      if (t->sram_used_bytes > 0) {
        log::Warn(log::BoardComponent(index_),
                  "holds {} bytes of models this daemon did not load; resetting it",
                  t->sram_used_bytes);
        Report(true, BoardBootState::kPowerOn, "resetting: holds another daemon's models");
        if (HostStatus s = link_->Reset(); !s.ok()) {
          MarkOffline("reset failed: " + s.error().message);
          return;
        }
      }
    }
    Report(true, BoardBootState::kSelfTest, "booting");
    if (HostStatus s = link_->Boot(); !s.ok()) {
      Report(s.code() != StatusCode::kUnavailable, BoardBootState::kFaulted,
             "boot failed: " + s.error().message);
      online_ = false;
      return;
    }
    if (auto again = link_->Identify(); again.ok()) identity_ = *again;
    CountRollbacks();
    online_ = true;
    Report(true, BoardBootState::kReady, "ready");
  }

  // Reads the firmware's log on from where it was read last, counting firmware rollbacks (the
  // health rules watch them). A board that restarted its numbering is read from the start.
  void CountRollbacks() {
    for (int page = 0; page < 16; ++page) {
      auto log = link_->ReadErrorLog(next_log_sequence_);
      if (!log.ok()) return;
      if (log->next_sequence < next_log_sequence_) {
        next_log_sequence_ = 0;
        continue;
      }
      for (const BoardLogRecord& r : log->records) {
        if (r.code == kBoardLogImageRolledBack) ++firmware_rollbacks_;
      }
      const bool more = !log->records.empty() && log->next_sequence != next_log_sequence_;
      next_log_sequence_ = log->next_sequence;
      if (!more) return;
    }
  }

  void PollTelemetry() {
    if (!online_) return;
    int64_t now = clock_.NowNanos();
    if (now - last_telemetry_ns_ < kTelemetryPeriodNs) return;
    last_telemetry_ns_ = now;
    // The watchdog: a firmware that misses its heartbeat is hung. Going offline re-queues the
    // board's jobs; EnsureOnline then resets it, boots it, and the daemon reloads its models.
    if (HostStatus beat = link_->Heartbeat();
        !beat.ok() && beat.code() != StatusCode::kUnimplemented) {
      ++heartbeat_misses_;
      MarkOffline("missed firmware heartbeat: " + beat.error().message);
      return;
    }
    auto t = link_->ReadTelemetry();
    if (!t.ok()) {
      MarkOffline("telemetry read failed: " + t.error().message);
      return;
    }
    if (t->state != BoardBootState::kReady) {
      // A board process that died and came back before we noticed (the link reconnects by
      // itself) answers from power-on, with none of our models: it is a lost board. A board
      // that faulted (a thermal trip) says why in this reading: it goes with the report.
      MarkOffline(std::string("board left the ready state behind our back (now ") +
                      BoardBootStateName(t->state) + ")",
                  &*t);
      return;
    }
    auto update = std::make_unique<WorkerEvent>(BoardUpdate{});
    BoardUpdate& u = std::get<BoardUpdate>(*update);
    u.board = index_;
    u.boot_state = t->state;
    u.online = true;
    u.identity = identity_;
    u.telemetry = *t;
    u.has_telemetry = true;
    u.firmware_rollbacks = firmware_rollbacks_;
    u.heartbeat_misses = heartbeat_misses_;
    Send(std::move(update));
  }

  void Handle(StepWork& work) {
    last_step_ns_ = clock_.NowNanos();
    StepDone done;
    done.serial = work.serial;
    done.model_id = work.model_id;
    done.job_ids = std::move(work.job_ids);
    if (!online_) {
      done.status = Unavailable();
      done.detail = "board " + std::to_string(index_) + " is not ready";
    } else if (auto outcome = link_->Step(work.model_id, work.seqs); outcome.ok()) {
      done.outcome = std::move(outcome).value();
    } else {
      done.status = outcome.status();
      done.detail = outcome.error().message;
      if (done.status.code() != StatusCode::kUnavailable && !BoardStillReady()) {
        // The Step reached a board that restarted behind our back: its sequences are not
        // wrong, their board was lost. Said UNAVAILABLE, they are re-queued, not failed.
        done.status = Unavailable();
        done.detail = "board " + std::to_string(index_) + " restarted: " + done.detail;
      }
      if (done.status.code() == StatusCode::kUnavailable) MarkOffline("step failed: " + done.detail);
    }
    done.seqs = std::move(work.seqs);
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

  // Staging is queued and then done a chunk at a time by StageNextChunk, between the other
  // requests: a load never holds up the Steps of the board's resident models for more than one
  // WriteWeights.
  void Handle(StageLoadWork& work) { stage_queue_.push_back(std::move(work)); }

  // Writes the next chunk of the stage under way, starting the next queued one when none is.
  // Reports progress at most every kProgressPeriodNs, and a LoadDone at the end.
  void StageNextChunk() {
    if (!session_) {
      if (stage_queue_.empty()) return;
      StageLoadWork work = std::move(stage_queue_.front());
      stage_queue_.pop_front();
      if (!online_) return FinishStage(work.model_id, work.stage, Unavailable(), "is not ready");
      if (work.replaces_model_id != 0) {
        (void)link_->UnloadModel(work.replaces_model_id);  // NOT_FOUND: already gone.
      }
      session_.emplace(work.model, work.model_id, work.stage,
                       std::max<uint32_t>(4096, identity_.max_chunk_bytes),
                       std::move(work.next_stage));
      last_progress_ns_ = 0;
      if (HostStatus s = session_->Begin(*link_); !s.ok()) {
        return EndSession(s.status(), s.error().message);
      }
      return;
    }
    if (HostStatus s = session_->Next(*link_); !s.ok()) {
      return EndSession(s.status(), s.error().message);
    }
    const int64_t now = clock_.NowNanos();
    if (session_->done() || now - last_progress_ns_ >= kProgressPeriodNs) {
      last_progress_ns_ = now;
      Send(std::make_unique<WorkerEvent>(
          LoadProgressEvent{session_->model_id(), session_->stage(), session_->written()}));
    }
    if (session_->done()) EndSession(OkStatus(), "");
  }

  bool staging() const { return session_.has_value() || !stage_queue_.empty(); }

  // How long to wait for the board's next request before writing the next chunk: while Steps
  // are coming, chunks alternate with them; otherwise staging does not wait.
  int PacingWaitMs() const {
    const int64_t since = clock_.NowNanos() - last_step_ns_;
    if (last_step_ns_ == 0 || since >= kStepPacingNs) return 0;
    return static_cast<int>((kStepPacingNs - since) / 1'000'000) + 1;
  }

  // The board went away, was reset, or the worker stops: every stage under way or queued fails
  // (nothing of them stays: a reset board holds nothing, a lost one is reset before reuse).
  void AbandonStaging(const std::string& why) {
    if (session_) {
      if (online_) session_->Abort(*link_);
      EndSession(Unavailable(), why);
    }
    while (!stage_queue_.empty()) {
      const StageLoadWork work = std::move(stage_queue_.front());
      stage_queue_.pop_front();
      FinishStage(work.model_id, work.stage, Unavailable(), why);
    }
  }

  void Handle(RepairWork& work) {
    const int64_t start = clock_.NowNanos();
    RepairDone done;
    done.model_id = work.model_id;
    done.stage = work.stage;
    if (!online_) {
      done.status = Unavailable();
      done.detail = "board " + std::to_string(index_) + " is not ready";
    } else {
      HostStatus restaged = RestageFaultedTensors(
          *link_, *work.model, work.model_id, work.stage, &next_fault_sequence_,
          std::max<uint64_t>(4096, identity_.max_chunk_bytes), &done.report);
      done.status = restaged.status();
      if (!restaged.ok()) done.detail = std::move(restaged).error().message;
    }
    done.elapsed_s = Seconds(clock_.NowNanos() - start);
    last_telemetry_ns_ = 0;
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

  void Handle(UnloadWork& work) {
    int64_t start = clock_.NowNanos();
    OperationDone done{OperationDone::Kind::kUnload, work.admin_tag, work.admin_peer, work.name,
                       OkStatus(), "", 0};
    done.model_id = work.model_id;
    if (!online_) {
      done.status = Unavailable();
      done.detail = "board not ready";
    } else if (HostStatus s = link_->UnloadModel(work.model_id); !s.ok()) {
      done.status = s.status();
      done.detail = s.error().message;
    }
    last_telemetry_ns_ = 0;
    done.elapsed_s = Seconds(clock_.NowNanos() - start);
    if (work.report) Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

  void Handle(ResetWork& work) {
    AbandonStaging("reset while staging");
    int64_t start = clock_.NowNanos();
    OperationDone done{OperationDone::Kind::kReset, work.admin_tag, work.admin_peer, "",
                       OkStatus(), "", 0};
    if (!link_) {
      done.status = Unavailable();
      done.detail = "board not connected";
    } else if (HostStatus s = link_->Reset(); !s.ok()) {
      done.status = s.status();
      done.detail = s.error().message;
    }
    online_ = false;
    last_attempt_ns_ = 0;
    Report(link_ != nullptr, BoardBootState::kPowerOn, "reset");
    EnsureOnline();
    if (done.status.ok() && !online_) {
      done.status = Unavailable();
      done.detail = "board did not come back after reset";
    }
    done.elapsed_s = Seconds(clock_.NowNanos() - start);
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

  void Handle(FaultWork& work) {
    OperationDone done{OperationDone::Kind::kFault, work.admin_tag, work.admin_peer, "",
                       OkStatus(), "fault injected", 0};
    if (!link_) {
      done.status = Unavailable();
      done.detail = "board not connected";
    } else if (HostStatus s = link_->InjectFault(work.fault); !s.ok()) {
      done.status = s.status();
      done.detail = s.error().message;
      // No answer (a process_crash took the board with it): the board is lost, whether or not
      // a new process is already listening on its endpoint.
      if (s.code() == StatusCode::kUnavailable) MarkOffline("fault injection: " + done.detail);
    }
    last_telemetry_ns_ = 0;  // Look at the board again at once.
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

  void Handle(GeometryWork& work) {
    GeometryDone done{work.admin_tag, work.admin_peer, OkStatus(), "", identity_, {}, {}};
    if (!link_ || !online_) {
      done.status = Unavailable();
      done.detail = "board " + std::to_string(index_) + " is not ready";
    } else if (auto harvest = link_->ReadGeometry(); !harvest.ok()) {
      done.status = harvest.status();
      done.detail = harvest.error().message;
    } else if (auto telemetry = link_->ReadTelemetry(); !telemetry.ok()) {
      done.status = telemetry.status();
      done.detail = telemetry.error().message;
    } else {
      done.harvest = std::move(harvest).value();
      done.telemetry = std::move(telemetry).value();
    }
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

  void Handle(DiagWork& work) {
    DiagDone done{work.admin_tag, work.admin_peer, {}};
    if (!link_) {
      done.report.level = work.level;
      done.report.outcome = DiagOutcome::kFail;
      DiagTestResult link;
      link.name = "link";
      link.outcome = DiagOutcome::kFail;
      link.code = 201;
      link.message = "board not connected: " + config_.endpoint;
      done.report.tests.push_back(std::move(link));
    } else {
      int64_t last_progress_ns = 0;
      done.report = RunBoardDiagnostics(
          *link_, clock_, work.level, work.limits, [&](const DiagProgress& p) {
            // At most about ten a second, and the last band of each test always.
            const int64_t now = clock_.NowNanos();
            if (p.done < p.total && now - last_progress_ns < kProgressPeriodNs) return;
            last_progress_ns = now;
            Send(std::make_unique<WorkerEvent>(DiagProgressEvent{work.admin_tag, work.admin_peer, p}));
          });
      if (done.report.pes_retired > 0) {
        // The defect map changed: spares and usable PEs are read again for the health rules.
        if (auto id = link_->Identify(); id.ok()) identity_ = *id;
      }
    }
    last_telemetry_ns_ = 0;  // Report the board again at once.
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

  void Handle(FirmwareInfoWork& work) {
    FirmwareInfoDone done{work.admin_tag, work.admin_peer, OkStatus(), "",
                          identity_.firmware_version, {}};
    if (!link_) {
      done.status = Unavailable();
      done.detail = "board " + std::to_string(index_) + " is not connected";
    } else if (auto slots = link_->ReadFirmwareSlots(); !slots.ok()) {
      done.status = slots.status();
      done.detail = slots.error().message;
    } else {
      done.slots = std::move(slots).value();
    }
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

  void Handle(FirmwareUpdateWork& work) {
    const int64_t start = clock_.NowNanos();
    OperationDone done{OperationDone::Kind::kFirmware, work.admin_tag, work.admin_peer, "",
                       OkStatus(), "", 0};
    auto fail = [&](Status status, std::string detail) {
      done.status = status;
      done.detail = std::move(detail);
    };
    HostResult<BoardFirmwareSlots> slots =
        link_ ? link_->ReadFirmwareSlots()
              : HostResult<BoardFirmwareSlots>(
                    Error{StatusCode::kUnavailable,
                          "board " + std::to_string(index_) + " is not connected"});
    if (!link_) {
      fail(Unavailable(), "board " + std::to_string(index_) + " is not connected");
    } else if (!slots.ok()) {
      fail(slots.status(), slots.error().message);
    } else {
      const uint32_t target = slots->active_slot == 0 ? 1 : 0;
      const uint64_t total = work.image.size();
      const uint32_t crc = Crc32c(std::span<const std::byte>(work.image));
      const size_t chunk = std::max<size_t>(4096, identity_.max_chunk_bytes == 0
                                                      ? 65536
                                                      : identity_.max_chunk_bytes);
      HostStatus s = link_->BeginFirmwareImage(target, total, crc, work.signature);
      int64_t last_progress_ns = 0;
      for (uint64_t offset = 0; s.ok() && offset < total; offset += chunk) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, total - offset));
        s = link_->WriteFirmwareChunk(target, offset,
                                      std::span<const std::byte>(work.image).subspan(offset, n));
        const int64_t now = clock_.NowNanos();
        if (s.ok() && (offset + n == total || now - last_progress_ns >= kProgressPeriodNs)) {
          last_progress_ns = now;
          Send(std::make_unique<WorkerEvent>(FirmwareProgressEvent{
              work.admin_tag, work.admin_peer, offset + n, total, Seconds(now - start)}));
        }
      }
      if (s.ok()) s = link_->CommitFirmwareImage(target);
      if (!s.ok()) {
        fail(s.status(), s.error().message);
      } else {
        done.detail = "image of " + std::to_string(total) + " bytes accepted into slot " +
                      std::to_string(target) +
                      "; it boots, on trial, at the board's next reset (waferctl reset " +
                      std::to_string(index_) + ")";
      }
    }
    done.elapsed_s = Seconds(clock_.NowNanos() - start);
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

  void Handle(FirmwareRollbackWork& work) {
    OperationDone done{OperationDone::Kind::kFirmware, work.admin_tag, work.admin_peer, "",
                       OkStatus(), "", 0};
    if (!link_) {
      done.status = Unavailable();
      done.detail = "board " + std::to_string(index_) + " is not connected";
    } else if (HostStatus s = link_->RollbackFirmware(); !s.ok()) {
      done.status = s.status();
      done.detail = s.error().message;
    } else if (auto slots = link_->ReadFirmwareSlots(); slots.ok() && slots->pending) {
      done.detail = "slot " + std::to_string(slots->pending_slot) +
                    " boots, on trial, at the board's next reset (waferctl reset " +
                    std::to_string(index_) + ")";
    } else {
      done.detail = "the other slot boots, on trial, at the board's next reset";
    }
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

  void Handle(LogsWork& work) {
    LogsDone done{work.admin_tag, work.admin_peer, OkStatus(), "", {}};
    if (!link_) {
      done.status = Unavailable();
      done.detail = "board not connected";
    } else if (auto log = link_->ReadErrorLog(work.from_sequence); log.ok()) {
      done.log = std::move(log).value();
    } else {
      done.status = log.status();
      done.detail = log.error().message;
    }
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

 private:
  void EndSession(Status status, const std::string& detail) {
    const uint32_t model_id = session_->model_id(), stage = session_->stage();
    session_.reset();
    FinishStage(model_id, stage, status, detail);
  }

  void FinishStage(uint32_t model_id, uint32_t stage, Status status, const std::string& detail) {
    LoadDone done;
    done.model_id = model_id;
    done.stage = stage;
    done.status = status;
    if (!status.ok()) done.detail = "board " + std::to_string(index_) + ": " + detail;
    last_telemetry_ns_ = 0;  // SRAM use changed: report it at once.
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

  // Whether the board still reports the ready state (false also when it cannot be read).
  bool BoardStillReady() {
    auto t = link_->ReadTelemetry();
    return t.ok() && t->state == BoardBootState::kReady;
  }

  // `last`, when given, is the board's final reading, reported with the loss.
  void MarkOffline(const std::string& why, const BoardTelemetry* last = nullptr) {
    online_ = false;  // First: the stage under way is not unloaded over a dead link.
    AbandonStaging("went offline while staging (" + why + ")");
    link_.reset();  // Reconnect from scratch next time.
    last_attempt_ns_ = clock_.NowNanos();
    Report(false, BoardBootState::kPowerOn, why, last);
  }

  void Report(bool online, BoardBootState state, const std::string& detail,
              const BoardTelemetry* telemetry = nullptr) {
    auto update = std::make_unique<WorkerEvent>(BoardUpdate{});
    BoardUpdate& u = std::get<BoardUpdate>(*update);
    u.board = index_;
    u.online = online;
    u.boot_state = state;
    u.detail = detail;
    u.identity = identity_;
    if (telemetry != nullptr) {
      u.telemetry = *telemetry;
      u.has_telemetry = true;
    }
    u.firmware_rollbacks = firmware_rollbacks_;
    u.heartbeat_misses = heartbeat_misses_;
    Send(std::move(update));
  }

  void Send(std::unique_ptr<WorkerEvent> event) { net::SendOwned(channel_, std::move(event)); }

  const BoardLinkFactory& link_factory_;
  const Clock& clock_;
  const uint32_t index_;
  const BoardConfig& config_;
  net::Socket& channel_;
  const std::atomic<bool>& stop_;  // Daemon shutdown: abandon a load between chunks.
  std::unique_ptr<BoardLink> link_;
  uint64_t next_log_sequence_ = 0;  // CountRollbacks reads on from here.
  uint64_t firmware_rollbacks_ = 0;
  uint64_t heartbeat_misses_ = 0;
  std::deque<StageLoadWork> stage_queue_;  // Stages waiting for the one under way.
  std::optional<StageSession> session_;    // The stage being written, a chunk at a time.
  int64_t last_progress_ns_ = 0;
  int64_t last_step_ns_ = 0;  // When the last Step was handled (0: never).
  BoardIdentity identity_;
  bool online_ = false;
  bool claimed_ = false;  // The board's SRAM was checked for models of a previous daemon.
  // The board's fault reports read so far: repairs read on from here (lowered on reconnect to a
  // board process that restarted and numbers its reports from the start again).
  uint64_t next_fault_sequence_ = 0;
  int64_t last_attempt_ns_ = 0;
  int64_t last_telemetry_ns_ = 0;
};

}  // namespace

BoardWorker::BoardWorker(std::unique_ptr<net::Socket> channel, const Clock& clock,
                         uint32_t index, BoardConfig config, BoardLinkFactory link_factory)
    : clock_(clock),
      index_(index),
      config_(std::move(config)),
      link_factory_(std::move(link_factory)),
      channel_(std::move(channel)) {}

BoardWorker::~BoardWorker() { Stop(); }

std::string BoardWorker::ChannelEndpoint(uint32_t index) {
  return "inproc://waferd-board-worker-" + std::to_string(index);
}

void BoardWorker::Start() { thread_ = std::thread([this] { Run(); }); }

void BoardWorker::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void BoardWorker::Run() {
  net::Socket& channel = *channel_;
  Driver driver(link_factory_, clock_, index_, config_, channel, stop_);
  driver.EnsureOnline();
  while (!stop_.load()) {
    if (driver.staging()) {
      // One request, then one chunk: while a resident model is stepping, at most one
      // WriteWeights goes to the board between two of its Steps.
      std::unique_ptr<WorkerRequest> request = net::ReceiveOwned<WorkerRequest>(channel);
      if (request == nullptr) {
        if (const int wait_ms = driver.PacingWaitMs(); wait_ms > 0) {
          zmq::pollitem_t items[] = {{channel.handle(), 0, ZMQ_POLLIN, 0}};
          try {
            zmq::poll(items, 1, std::chrono::milliseconds(wait_ms));
          } catch (const zmq::error_t&) {
            break;  // Context terminated.
          }
          request = net::ReceiveOwned<WorkerRequest>(channel);
        }
      }
      if (request != nullptr) std::visit([&](auto& work) { driver.Handle(work); }, *request);
      driver.StageNextChunk();
    } else {
      zmq::pollitem_t items[] = {{channel.handle(), 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, 1, std::chrono::milliseconds(50));
      } catch (const zmq::error_t&) {
        break;  // Context terminated.
      }
      while (auto request = net::ReceiveOwned<WorkerRequest>(channel)) {
        std::visit([&](auto& work) { driver.Handle(work); }, *request);
        if (stop_.load() || driver.staging()) break;
        // A board busy with Steps always has the next one waiting here: without this its
        // heartbeat and readings (what the health rules judge) would wait until it idles.
        driver.PollTelemetry();  // At most once per kTelemetryPeriodNs.
      }
    }
    driver.EnsureOnline();
    driver.PollTelemetry();
  }
  driver.AbandonStaging("waferd is stopping");
  channel_.reset();  // Closed on the thread that used it.
}

}  // namespace wafer::host
