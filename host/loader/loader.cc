#include "host/loader/loader.h"

#include "host/daemon/inproc_channel.h"
#include "host/loader/staging.h"

namespace wafer::host {

Loader::Loader(zmq::context_t& context) : context_(context) {}

Loader::~Loader() { Stop(); }

std::string Loader::ChannelEndpoint() { return "inproc://waferd-loader"; }

void Loader::Start() {
  // Connect on the caller's thread so that the step loop's first sends find a peer; the socket
  // then moves to the loader thread (thread start is a full barrier).
  channel_ = zmq::socket_t(context_, zmq::socket_type::pair);
  channel_.set(zmq::sockopt::linger, 0);
  channel_.connect(ChannelEndpoint());
  thread_ = std::thread([this] { Run(); });
}

void Loader::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void Loader::Run() {
  while (!stop_.load()) {
    zmq::pollitem_t items[] = {{channel_.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 1, std::chrono::milliseconds(50));
    } catch (const zmq::error_t&) {
      break;  // Context terminated.
    }
    while (auto work = ReceiveOwned<PrepareWork>(channel_)) {
      auto done = std::make_unique<PrepareDone>();
      done->model_id = work->model_id;
      done->status = PrepareModel(*work, &done->model, &done->rows, &done->detail);
      SendOwned(channel_, std::move(done));
      if (stop_.load()) break;
    }
  }
  channel_.close();
}

}  // namespace wafer::host
