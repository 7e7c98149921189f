#include "host/daemon/board_worker.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <utility>
#include <vector>

#include "host/board/board_link.h"
#include "host/daemon/inproc_channel.h"
#include "host/daemon/worker_messages.h"
#include "host/placement/placement_planner.h"

namespace wafer::host {
namespace {

constexpr int64_t kTelemetryPeriodNs = 1'000'000'000;
constexpr int64_t kReconnectPeriodNs = 2'000'000'000;
constexpr int64_t kProgressPeriodNs = 100'000'000;

double Seconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }

// Drives one board. Not thread-safe; lives on the worker thread.
class Driver {
 public:
  Driver(zmq::context_t& context, const Clock& clock, uint32_t index, const BoardConfig& config,
         zmq::socket_t& channel, const std::atomic<bool>& stop)
      : context_(context),
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
      auto link = ConnectBoardLink(context_, config_.endpoint, static_cast<int>(config_.timeout_ms));
      if (!link.ok()) {
        Report(false, BoardBootState::kPowerOn, "cannot connect to " + config_.endpoint);
        return;
      }
      link_ = std::move(link).value();
    }
    auto identity = link_->Identify();
    if (!identity.ok()) {
      // A hung firmware answers nothing but Reset (the board's reset line): pull it once.
      if (link_->Reset().ok()) identity = link_->Identify();
    }
    if (!identity.ok()) {
      Report(false, BoardBootState::kPowerOn, "identify failed: " + link_->last_error());
      return;
    }
    identity_ = *identity;
    // A board that is not Ready was reset or power-cycled: no model of ours is on it any more.
    // One still Ready (a link that only timed out) keeps its models and their rows.
    if (identity_.state != BoardBootState::kReady) placed_rows_.clear();
    Report(true, BoardBootState::kSelfTest, "booting");
    if (Status s = link_->Boot(); !s.ok()) {
      Report(s.code() != StatusCode::kUnavailable, BoardBootState::kFaulted,
             "boot failed: " + link_->last_error());
      online_ = false;
      return;
    }
    if (auto again = link_->Identify(); again.ok()) identity_ = *again;
    online_ = true;
    Report(true, BoardBootState::kReady, "ready");
  }

  void PollTelemetry() {
    if (!online_) return;
    int64_t now = clock_.NowNanos();
    if (now - last_telemetry_ns_ < kTelemetryPeriodNs) return;
    last_telemetry_ns_ = now;
    // The watchdog: a firmware that misses its heartbeat is hung. Going offline re-queues the
    // board's jobs; EnsureOnline then resets it, boots it, and the daemon reloads its models.
    if (Status beat = link_->Heartbeat(); !beat.ok() && beat.code() != StatusCode::kUnimplemented) {
      MarkOffline("missed firmware heartbeat: " + link_->last_error());
      return;
    }
    auto t = link_->ReadTelemetry();
    if (!t.ok()) {
      MarkOffline("telemetry read failed: " + link_->last_error());
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
    Send(std::move(update));
  }

  void Handle(StepWork& work) {
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
      done.detail = link_->last_error();
      if (done.status.code() == StatusCode::kUnavailable) MarkOffline("step failed: " + done.detail);
    }
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

  void Handle(LoadWork& work) {
    int64_t start = clock_.NowNanos();
    LoadDone done;
    done.admin_tag = work.admin_tag;
    done.admin_peer = work.admin_peer;
    done.name = work.name;
    done.model_id = work.model_id;
    done.status = Load(work, start, &done);
    done.elapsed_s = Seconds(clock_.NowNanos() - start);
    last_telemetry_ns_ = 0;  // SRAM use changed: report it at once.
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

  void Handle(UnloadWork& work) {
    int64_t start = clock_.NowNanos();
    OperationDone done{OperationDone::Kind::kUnload, work.admin_tag, work.admin_peer, work.name,
                       OkStatus(), "", 0};
    if (!online_) {
      done.status = Unavailable();
      done.detail = "board not ready";
    } else if (Status s = link_->UnloadModel(work.model_id); !s.ok()) {
      done.status = s;
      done.detail = link_->last_error();
    } else {
      placed_rows_.erase(work.model_id);
    }
    last_telemetry_ns_ = 0;
    done.elapsed_s = Seconds(clock_.NowNanos() - start);
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

  void Handle(ResetWork& work) {
    int64_t start = clock_.NowNanos();
    OperationDone done{OperationDone::Kind::kReset, work.admin_tag, work.admin_peer, "",
                       OkStatus(), "", 0};
    if (!link_) {
      done.status = Unavailable();
      done.detail = "board not connected";
    } else if (Status s = link_->Reset(); !s.ok()) {
      done.status = s;
      done.detail = link_->last_error();
    }
    online_ = false;
    placed_rows_.clear();  // Reset power-cycles the wafer: every model is gone.
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
    } else if (Status s = link_->InjectFault(work.fault); !s.ok()) {
      done.status = s;
      done.detail = link_->last_error();
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
      done.detail = link_->last_error();
    } else if (auto telemetry = link_->ReadTelemetry(); !telemetry.ok()) {
      done.status = telemetry.status();
      done.detail = link_->last_error();
    } else {
      done.harvest = std::move(harvest).value();
      done.telemetry = std::move(telemetry).value();
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
      done.detail = link_->last_error();
    }
    Send(std::make_unique<WorkerEvent>(std::move(done)));
  }

 private:
  Status Load(LoadWork& work, int64_t start, LoadDone* done) {
    if (!online_) {
      done->detail = "board " + std::to_string(index_) + " is not ready";
      return Unavailable();
    }
    ModelSource source;
    WAFER_RETURN_IF_ERROR(OpenModelSource(work.path, &source, &done->detail));
    if (work.name.empty()) work.name = source.name;
    done->name = work.name;
    ModelManifest manifest;
    manifest.model_id = work.model_id;
    manifest.name = work.name;
    manifest.arch = source.arch;
    manifest.tensors = source.tensors;
    manifest.shape_only = source.shape_only;
    manifest.slots = work.slots;
    manifest.context_length = work.context_length == 0
                                  ? source.arch.max_position
                                  : std::min(work.context_length, source.arch.max_position);
    if (work.replaces_model_id != 0) {
      link_->UnloadModel(work.replaces_model_id).IgnoreError();
      placed_rows_.erase(work.replaces_model_id);
    }
    WAFER_RETURN_IF_ERROR(Place(&manifest, &done->detail));
    if (Status s = link_->BeginModel(manifest); !s.ok()) {
      placed_rows_.erase(work.model_id);
      done->detail = "board refused the model: " + link_->last_error();
      return s;
    }
    const uint64_t total = source.shape_only ? 0 : source.weight_bytes();
    const uint64_t chunk = std::max<uint32_t>(4096, identity_.max_chunk_bytes);
    uint64_t written = 0;
    int64_t last_progress = 0;
    for (size_t i = 0; i < source.data.size() && !stop_.load(); ++i) {
      std::span<const std::byte> tensor = source.data[i];
      for (uint64_t off = 0; off < tensor.size(); off += chunk) {
        auto piece = tensor.subspan(off, std::min<uint64_t>(chunk, tensor.size() - off));
        if (Status s = link_->WriteWeights(work.model_id, static_cast<uint32_t>(i), off, piece);
            !s.ok()) {
          done->detail = "writing " + source.tensors[i].name + " at offset " +
                         std::to_string(off) + ": " + link_->last_error();
          link_->UnloadModel(work.model_id).IgnoreError();  // Nothing half-loaded stays.
          placed_rows_.erase(work.model_id);
          return s;
        }
        written += piece.size();
        int64_t now = clock_.NowNanos();
        if (now - last_progress >= kProgressPeriodNs || written == total) {
          last_progress = now;
          double rate = static_cast<double>(written) / std::max(1e-9, Seconds(now - start));
          Send(std::make_unique<WorkerEvent>(LoadProgressEvent{
              work.admin_tag, work.admin_peer, written, total, rate, "transferring"}));
        }
      }
    }
    if (Status s = link_->CommitModel(work.model_id); !s.ok()) {
      done->detail = "commit failed: " + link_->last_error();
      link_->UnloadModel(work.model_id).IgnoreError();
      placed_rows_.erase(work.model_id);
      return s;
    }
    done->arch = source.arch;
    done->text = source.text;
    done->parameters = source.parameters;
    done->weight_bytes = source.weight_bytes();
    done->slots = manifest.slots;
    done->context_length = manifest.context_length;
    done->shape_only = source.shape_only;
    return OkStatus();
  }

  // Places `manifest` with the planner in the first band of free rows (below or between the
  // models already on the board) that holds it, and records the rows it takes.
  // RESOURCE_EXHAUSTED when no band does; `*detail` then says what the model needs.
  Status Place(ModelManifest* manifest, std::string* detail) {
    PlanRequest request;
    request.arch = manifest->arch;
    request.board = GeometryFromIdentity(identity_);
    request.slots = manifest->slots;
    request.context = manifest->context_length;
    request.dtype_bytes = 2;
    for (const TensorDesc& t : manifest->tensors) {
      if (t.dtype == DType::kF32) request.dtype_bytes = 4;
    }
    // Free bands: the gaps between placed models, top to bottom.
    std::vector<std::pair<uint32_t, uint32_t>> used;  // (first row, rows)
    for (const auto& [id, rows] : placed_rows_) used.push_back(rows);
    std::sort(used.begin(), used.end());
    std::vector<std::pair<uint32_t, uint32_t>> gaps;
    uint32_t row = 0;
    for (const auto& [first, rows] : used) {
      if (first > row) gaps.emplace_back(row, first - row);
      row = std::max(row, first + rows);
    }
    if (row < request.board.fabric_height) gaps.emplace_back(row, request.board.fabric_height - row);
    std::string why = "no free rows left on the board";
    for (const auto& [first, rows] : gaps) {
      request.origin_row = first;
      request.confine_height = rows;
      std::string gap_detail;
      Result<Plan> plan = PlanPlacement(request, &gap_detail);
      if (!plan.ok()) {
        why = gap_detail;
        continue;
      }
      WAFER_RETURN_IF_ERROR(ApplyPlan(*plan, 0, manifest, detail));
      placed_rows_[manifest->model_id] = {first, plan->boards[0].rows_used};
      return OkStatus();
    }
    *detail = "no room on board " + std::to_string(index_) + " (" +
              std::to_string(request.board.fabric_width) + "x" +
              std::to_string(request.board.fabric_height) + " PEs, " +
              std::to_string(placed_rows_.size()) + " models placed): " + why;
    return ResourceExhausted();
  }

  void MarkOffline(const std::string& why) {
    online_ = false;
    link_.reset();  // Reconnect from scratch next time.
    last_attempt_ns_ = clock_.NowNanos();
    Report(false, BoardBootState::kPowerOn, why);
  }

  void Report(bool online, BoardBootState state, const std::string& detail) {
    auto update = std::make_unique<WorkerEvent>(BoardUpdate{});
    BoardUpdate& u = std::get<BoardUpdate>(*update);
    u.board = index_;
    u.online = online;
    u.boot_state = state;
    u.detail = detail;
    u.identity = identity_;
    Send(std::move(update));
  }

  void Send(std::unique_ptr<WorkerEvent> event) { SendOwned(channel_, std::move(event)); }

  zmq::context_t& context_;
  const Clock& clock_;
  const uint32_t index_;
  const BoardConfig& config_;
  zmq::socket_t& channel_;
  const std::atomic<bool>& stop_;  // Daemon shutdown: abandon a load between chunks.
  std::unique_ptr<BoardLink> link_;
  BoardIdentity identity_;
  bool online_ = false;
  std::map<uint32_t, std::pair<uint32_t, uint32_t>> placed_rows_;  // model id -> (first row, rows)
  int64_t last_attempt_ns_ = 0;
  int64_t last_telemetry_ns_ = 0;
};

}  // namespace

BoardWorker::BoardWorker(zmq::context_t& context, const Clock& clock, uint32_t index,
                         BoardConfig config)
    : context_(context), clock_(clock), index_(index), config_(std::move(config)) {}

BoardWorker::~BoardWorker() { Stop(); }

std::string BoardWorker::ChannelEndpoint(uint32_t index) {
  return "inproc://waferd-board-worker-" + std::to_string(index);
}

void BoardWorker::Start() {
  // Connect on the caller's thread so that the step loop's first sends (config loads) find a
  // peer; the socket then moves to the worker thread (thread start is a full barrier).
  channel_ = zmq::socket_t(context_, zmq::socket_type::pair);
  channel_.set(zmq::sockopt::linger, 0);
  channel_.connect(ChannelEndpoint(index_));
  thread_ = std::thread([this] { Run(); });
}

void BoardWorker::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void BoardWorker::Run() {
  zmq::socket_t& channel = channel_;
  Driver driver(context_, clock_, index_, config_, channel, stop_);
  driver.EnsureOnline();
  while (!stop_.load()) {
    zmq::pollitem_t items[] = {{channel.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 1, std::chrono::milliseconds(50));
    } catch (const zmq::error_t&) {
      break;  // Context terminated.
    }
    while (auto request = ReceiveOwned<WorkerRequest>(channel)) {
      std::visit([&](auto& work) { driver.Handle(work); }, *request);
      if (stop_.load()) break;
    }
    driver.EnsureOnline();
    driver.PollTelemetry();
  }
  channel_.close();
}

}  // namespace wafer::host
