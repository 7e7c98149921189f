#include "host/daemon/daemon.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>

#include "common/net/owned_channel.h"
#include "host/daemon/internal/daemon_records.h"
#include "host/wire/admin_codec.h"
#include "host/wire/job_codec.h"

namespace wafer::host {
namespace {

// Messages handled per socket per loop turn, so one busy socket cannot starve the others.
constexpr int kBurst = 256;

std::span<const std::byte> View(const zmq::message_t& m) {
  return {static_cast<const std::byte*>(m.data()), m.size()};
}

}  // namespace

Daemon::Daemon(zmq::context_t& context, const DaemonConfig& config, const Clock& clock)
    : context_(context),
      config_(config),
      clock_(clock),
      start_ns_(clock.NowNanos()),
      job_socket_(context, zmq::socket_type::router),
      admin_socket_(context, zmq::socket_type::router) {}

Daemon::~Daemon() {
  for (auto& board : boards_) board->worker->Stop();
  // Requests and events still queued in the channels own heap objects: drain them.
  for (auto& board : boards_) {
    while (net::ReceiveOwned<WorkerEvent>(board->channel)) {
    }
  }
  if (stop_fd_ >= 0) close(stop_fd_);
}

Status Daemon::Create(zmq::context_t& context, const DaemonConfig& config, const Clock& clock,
                      std::unique_ptr<Daemon>* out, std::string* detail) {
  std::unique_ptr<Daemon> d(new Daemon(context, config, clock));
  d->policy_ = MakeSchedulingPolicy(config.scheduler_policy);
  if (d->policy_ == nullptr) {
    *detail = "unknown scheduler policy " + config.scheduler_policy;
    return InvalidArgument();
  }
  WAFER_RETURN_IF_ERROR(d->Bind(detail));
  for (uint32_t i = 0; i < config.boards.size(); ++i) {
    auto board = std::make_unique<Board>();
    board->index = i;
    board->config = config.boards[i];
    board->channel = zmq::socket_t(context, zmq::socket_type::pair);
    board->channel.set(zmq::sockopt::linger, 0);
    board->channel.bind(BoardWorker::ChannelEndpoint(i));
    board->worker = std::make_unique<BoardWorker>(context, clock, i, board->config);
    board->worker->Start();
    d->boards_.push_back(std::move(board));
  }
  for (const ModelLoadConfig& m : config.models) {
    LoadRequest request;
    request.name = m.name;
    request.path = m.path;
    request.boards = m.boards.empty() ? std::vector<uint32_t>{m.board} : m.boards;
    request.slots = m.slots == 0 ? config.default_slots : m.slots;
    request.context_length = m.context_length;
    d->StartLoad(std::move(request));
  }
  *out = std::move(d);
  return OkStatus();
}

Status Daemon::Bind(std::string* detail) {
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (stop_fd_ < 0) {
    *detail = "eventfd failed";
    return Internal();
  }
  try {
    for (zmq::socket_t* s : {&job_socket_, &admin_socket_}) {
      s->set(zmq::sockopt::linger, 0);
      s->set(zmq::sockopt::router_mandatory, 1);
      s->set(zmq::sockopt::sndhwm, static_cast<int>(config_.send_high_water_mark));
      s->set(zmq::sockopt::rcvhwm, static_cast<int>(config_.send_high_water_mark));
      // libzmq drops the connection of a peer that sends more than this; below it, an oversized
      // message gets a typed MESSAGE_TOO_LARGE reply from OnJobFrame/OnAdminFrame.
      s->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(config_.max_message_bytes) * 4);
    }
    job_socket_.bind(config_.job_endpoint);
    job_endpoint_ = job_socket_.get(zmq::sockopt::last_endpoint);
    admin_socket_.bind(config_.admin_endpoint);
    admin_endpoint_ = admin_socket_.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    *detail = std::string("cannot bind job/admin endpoints (") + config_.job_endpoint + ", " +
              config_.admin_endpoint + "): " + e.what();
    return Unavailable();
  }
  if (!config_.metrics_address.empty()) {
    WAFER_RETURN_IF_ERROR(metrics_.Serve(config_.metrics_address, detail));
    std::string host = config_.metrics_address.substr(0, config_.metrics_address.rfind(':'));
    metrics_url_ = "http://" + host + ":" + std::to_string(metrics_.port()) + "/metrics";
  }
  return OkStatus();
}

void Daemon::RequestStop() {
  uint64_t one = 1;
  ssize_t n = write(stop_fd_, &one, sizeof(one));
  (void)n;  // A full eventfd already carries a stop request.
}

void Daemon::Run() {
  std::vector<zmq::pollitem_t> items;
  while (true) {
    items.clear();
    items.push_back({job_socket_.handle(), 0, ZMQ_POLLIN, 0});
    items.push_back({admin_socket_.handle(), 0, ZMQ_POLLIN, 0});
    items.push_back({nullptr, stop_fd_, ZMQ_POLLIN, 0});
    for (auto& board : boards_) items.push_back({board->channel.handle(), 0, ZMQ_POLLIN, 0});
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      std::fprintf(stderr, "waferd: poll failed: %s\n", e.what());
      break;
    }
    if (items[2].revents & ZMQ_POLLIN) {
      uint64_t value;
      ssize_t n = read(stop_fd_, &value, sizeof(value));
      (void)n;
      if (!stopping_) {
        stopping_ = true;
        draining_ = true;
        drain_deadline_ns_ = clock_.NowNanos() + int64_t{config_.drain_timeout_ms} * 1'000'000;
      }
    }
    PumpWorkers();
    PumpJobSocket();
    PumpAdminSocket();
    ExpireDeadlines();
    ScheduleSteps();
    UpdateGauges();
    if (stopping_) {
      bool idle = policy_->size() == 0 && jobs_running_ == 0;
      if (idle) break;
      if (clock_.NowNanos() >= drain_deadline_ns_) {
        std::fprintf(stderr, "waferd: drain timeout; cancelling %zu queued and %u running jobs\n",
                     policy_->size(), jobs_running_);
        for (auto& [id, job] : jobs_) {
          if (!job->finished) {
            FinishJob(*job, FinishReason::kError, ErrorCode::kDraining, "daemon shut down");
          }
        }
        break;
      }
    }
  }
}

void Daemon::PumpJobSocket() {
  for (int i = 0; i < kBurst; ++i) {
    zmq::message_t identity, payload;
    if (!job_socket_.recv(identity, zmq::recv_flags::dontwait)) return;
    std::string peer(static_cast<const char*>(identity.data()), identity.size());
    // A DEALER sends [payload]; a REQ adds an empty delimiter. Anything else is malformed.
    std::vector<zmq::message_t> frames;
    while (job_socket_.get(zmq::sockopt::rcvmore)) {
      frames.emplace_back();
      if (!job_socket_.recv(frames.back(), zmq::recv_flags::dontwait)) break;
    }
    if (!frames.empty() && frames.front().size() == 0) frames.erase(frames.begin());
    if (frames.size() != 1) {
      SendJob(peer, ErrorReply{ErrorCode::kMalformedMessage,
                               "expected one payload frame, got " + std::to_string(frames.size()),
                               0});
      continue;
    }
    OnJobFrame(peer, View(frames.front()));
  }
}

void Daemon::PumpAdminSocket() {
  for (int i = 0; i < kBurst; ++i) {
    zmq::message_t identity;
    if (!admin_socket_.recv(identity, zmq::recv_flags::dontwait)) return;
    std::string peer(static_cast<const char*>(identity.data()), identity.size());
    std::vector<zmq::message_t> frames;
    while (admin_socket_.get(zmq::sockopt::rcvmore)) {
      frames.emplace_back();
      if (!admin_socket_.recv(frames.back(), zmq::recv_flags::dontwait)) break;
    }
    if (!frames.empty() && frames.front().size() == 0) frames.erase(frames.begin());
    if (frames.size() != 1) {
      SendAdmin(peer, ErrorReply{ErrorCode::kMalformedMessage,
                                 "expected one payload frame, got " +
                                     std::to_string(frames.size()),
                                 0});
      continue;
    }
    OnAdminFrame(peer, View(frames.front()));
  }
}

void Daemon::PumpWorkers() {
  for (auto& board : boards_) {
    while (auto event = net::ReceiveOwned<WorkerEvent>(board->channel)) {
      OnWorkerEvent(*board, *event);
    }
  }
}

void Daemon::SendTo(zmq::socket_t& socket, const char* socket_name, const std::string& peer,
                    std::span<const std::byte> payload) {
  try {
    zmq::message_t id(peer.data(), peer.size());
    if (!socket.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      metrics_.Dropped(socket_name, "peer_backlog").Increment();
      return;
    }
    zmq::message_t body(payload.data(), payload.size());
    socket.send(body, zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    // EHOSTUNREACH: the peer disconnected. Its job keeps running; ResumeStream replays it.
    metrics_.Dropped(socket_name, e.num() == EHOSTUNREACH ? "peer_gone" : "send_error")
        .Increment();
  }
}

void Daemon::SendJob(const std::string& peer, const JobMessage& message) {
  SendTo(job_socket_, "job", peer, EncodeJobView(message));
}

void Daemon::SendAdmin(const std::string& peer, const AdminMessage& message) {
  const std::string bytes = EncodeAdmin(message);
  SendTo(admin_socket_, "admin", peer, std::as_bytes(std::span<const char>(bytes)));
}

Daemon::Model* Daemon::FindModel(const std::string& name) {
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : it->second.get();
}

void Daemon::UpdateGauges() {
  metrics_.queue_depth().Set(static_cast<double>(policy_->size()));
  metrics_.jobs_running().Set(static_cast<double>(jobs_running_));
}

}  // namespace wafer::host
