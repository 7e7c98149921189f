#include "host/loader/loader.h"

#include <zmq.hpp>

#include "common/net/owned_channel.h"
#include "host/loader/staging.h"

namespace wafer::host {

Loader::Loader(std::unique_ptr<net::Socket> channel) : channel_(std::move(channel)) {}

Loader::~Loader() { Stop(); }

std::string Loader::ChannelEndpoint() { return "inproc://waferd-loader"; }

void Loader::Start() { thread_ = std::thread([this] { Run(); }); }

void Loader::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void Loader::Run() {
  while (!stop_.load()) {
    zmq::pollitem_t items[] = {{channel_->handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 1, std::chrono::milliseconds(50));
    } catch (const zmq::error_t&) {
      break;  // Context terminated.
    }
    while (auto work = net::ReceiveOwned<PrepareWork>(*channel_)) {
      auto done = std::make_unique<PrepareDone>();
      done->model_id = work->model_id;
      HostStatus prepared = PrepareModel(*work, &done->model, &done->rows);
      done->status = prepared.status();
      if (!prepared.ok()) done->detail = std::move(prepared).error().message;
      net::SendOwned(*channel_, std::move(done));
      if (stop_.load()) break;
    }
  }
  channel_.reset();  // Closed on the thread that used it.
}

}  // namespace wafer::host
