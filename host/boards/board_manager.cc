#include "host/boards/board_manager.h"

#include <algorithm>

#include "common/log/log.h"
#include "common/net/owned_channel.h"
#include "host/boards/board_signals.h"

namespace wafer::host {
namespace {

BoardState ToBoardState(const BoardUpdate& u) {
  if (!u.online) return BoardState::kOffline;
  switch (u.boot_state) {
    case BoardBootState::kPowerOn: return BoardState::kResetting;
    case BoardBootState::kSelfTest:
    case BoardBootState::kVerifyImage:
    case BoardBootState::kRemap: return BoardState::kBooting;
    case BoardBootState::kReady: return BoardState::kReady;
    case BoardBootState::kFaulted: return BoardState::kFaulted;
  }
  return BoardState::kOffline;
}

}  // namespace

BoardManager::BoardManager(zmq::context_t& context, const Clock& clock,
                           std::vector<BoardConfig> configs, BoardLinkFactory link_factory,
                           telemetry::DaemonMetrics& metrics)
    : context_(context), clock_(clock), link_factory_(std::move(link_factory)), metrics_(metrics) {
  for (uint32_t i = 0; i < configs.size(); ++i) {
    Slot slot;
    slot.board = std::make_unique<Board>();
    slot.board->index = i;
    slot.board->config = std::move(configs[i]);
    boards_.push_back(std::move(slot));
  }
}

BoardManager::~BoardManager() {
  for (Slot& slot : boards_) {
    if (slot.worker) slot.worker->Stop();
  }
  // Requests and events still queued in the channels own heap objects: drain them.
  for (Slot& slot : boards_) {
    if (!slot.channel) continue;
    while (net::ReceiveOwned<WorkerEvent>(*slot.channel)) {
    }
  }
}

HostStatus BoardManager::Start() {
  for (Slot& slot : boards_) {
    const uint32_t index = slot.board->index;
    HostResult<net::OwnedChannel> channel =
        net::OpenOwnedChannel(context_, BoardWorker::ChannelEndpoint(index));
    if (!channel.ok()) return std::move(channel).error();
    slot.channel = std::move(channel->bound);
    slot.worker = std::make_unique<BoardWorker>(std::move(channel->connected), clock_, index,
                                                slot.board->config, link_factory_);
    slot.worker->Start();
  }
  return HostOk();
}

bool BoardManager::Send(uint32_t index, std::unique_ptr<WorkerRequest> work) {
  return net::SendOwned(*boards_[index].channel, std::move(work));
}

void BoardManager::Pump(const std::function<void(Board&, WorkerEvent&)>& on_event) {
  for (Slot& slot : boards_) {
    while (auto event = net::ReceiveOwned<WorkerEvent>(*slot.channel)) {
      on_event(*slot.board, *event);
    }
  }
}

void BoardManager::AddPollItems(std::vector<zmq::pollitem_t>* items) {
  for (Slot& slot : boards_) items->push_back({slot.channel->handle(), 0, ZMQ_POLLIN, 0});
}

BoardState BoardManager::ApplyUpdate(Board& board, const BoardUpdate& update) {
  const BoardState previous = board.state;
  board.state = ToBoardState(update);
  board.heard = true;
  board.detail = update.detail;
  if (update.online) board.identity = update.identity;
  board.heartbeat_misses = update.heartbeat_misses;
  board.firmware_rollbacks = update.firmware_rollbacks;
  telemetry::BoardSeries& series =
      metrics_.Board(board.index, update.has_telemetry ? update.telemetry.region_temp_c.size() : 0);
  for (size_t i = 0; i < series.state.size(); ++i) {
    series.state[i]->Set(i == static_cast<size_t>(board.state) ? 1 : 0);
  }
  if (update.has_telemetry) {
    board.telemetry = update.telemetry;
    float hottest = 0;
    for (size_t i = 0; i < update.telemetry.region_temp_c.size(); ++i) {
      hottest = std::max(hottest, update.telemetry.region_temp_c[i]);
      series.region_temperature[i]->Set(update.telemetry.region_temp_c[i]);
    }
    series.max_temperature->Set(hottest);
    series.power->Set(update.telemetry.power_w);
    series.sram_used->Set(static_cast<double>(update.telemetry.sram_used_bytes));
    series.sram_capacity->Set(static_cast<double>(update.telemetry.sram_total_bytes));
    metrics_.board_signals().Record(board.index, ToBoardSignals(board.identity, update.telemetry));
  }
  if (update.online) {
    metrics_.board_signals().SetFirmware(board.index, board.identity.firmware_version,
                                         board.identity.active_firmware_slot);
  }
  if (previous != board.state) {
    // A board that stopped answering is a warning, a faulted one an error; the rest is news.
    const log::Level level = board.state == BoardState::kFaulted   ? log::Level::kError
                             : board.state == BoardState::kOffline ? log::Level::kWarn
                                                                   : log::Level::kInfo;
    log::Log(level, log::BoardComponent(board.index), "{} -> {} ({})", BoardStateName(previous),
             BoardStateName(board.state), board.detail);
  }
  if (health_hook_) health_hook_(board, *this);
  return previous;
}

void BoardManager::ExportDrain(const Board& board) {
  telemetry::BoardSeries& series = metrics_.Board(board.index, 0);
  for (size_t i = 0; i < series.drained.size() && i < kDrainReasons; ++i) {
    series.drained[i]->Set(board.drain.Has(static_cast<DrainReason>(i)) ? 1 : 0);
  }
}

bool BoardManager::Drain(uint32_t index, DrainReason reason, DrainMode mode) {
  if (!has(index)) return false;
  Board& board = at(index);
  const bool changed = board.drain.Add(reason, mode);
  ExportDrain(board);
  if (drain_recorder_) drain_recorder_(board);
  if (changed) {
    log::Info(log::BoardComponent(index), "drained: {}", board.drain.Describe());
    if (drain_listener_) drain_listener_(board);
  }
  return true;
}

bool BoardManager::Undrain(uint32_t index, DrainReason reason) {
  if (!has(index)) return false;
  Board& board = at(index);
  const bool changed = board.drain.Remove(reason);
  ExportDrain(board);
  if (drain_recorder_) drain_recorder_(board);
  if (changed) {
    const std::string left = board.drain.Describe();
    log::Info(log::BoardComponent(index), "{} drain lifted{}{}", DrainReasonName(reason),
              left.empty() ? "" : "; still drained: ", left);
    if (drain_listener_) drain_listener_(board);
  }
  return true;
}

}  // namespace wafer::host
