#include "host/loader/stage_session.h"

#include <algorithm>

#include "host/loader/stage_manifest.h"

namespace wafer::host {

StageSession::StageSession(std::shared_ptr<const PreparedModel> model, uint32_t model_id,
                           uint32_t stage, uint64_t max_chunk, NextStage next_stage)
    : model_(std::move(model)),
      model_id_(model_id),
      stage_(stage),
      max_chunk_(max_chunk),
      next_stage_(std::move(next_stage)) {}

HostStatus StageSession::Begin(BoardLink& link) {
  WAFER_HOST_RETURN_IF_ERROR(StageManifest(*model_, model_id_, stage_, &manifest_, &data_));
  manifest_.next_stage = next_stage_;
  if (HostStatus s = link.BeginModel(manifest_); !s.ok()) {
    return Error{s.code(), "refused the model: " + s.error().message};
  }
  // Empty tensors hold no chunk.
  while (tensor_ < data_.size() && data_[tensor_].empty()) ++tensor_;
  return HostOk();
}

HostStatus StageSession::Next(BoardLink& link) {
  if (tensor_ < data_.size()) {
    const std::span<const std::byte> bytes = data_[tensor_];
    const auto piece = bytes.subspan(offset_, std::min<uint64_t>(max_chunk_, bytes.size() - offset_));
    // The bytes are the model's (its mapped checkpoint): the link may send them without a copy,
    // holding the model until it no longer reads them.
    if (HostStatus s = link.WriteSharedWeights(model_id_, static_cast<uint32_t>(tensor_),
                                               offset_, piece, model_);
        !s.ok()) {
      Error error{s.code(), "writing " + manifest_.tensors[tensor_].name + " at offset " +
                                std::to_string(offset_) + ": " + s.error().message};
      Abort(link);
      return error;
    }
    written_ += piece.size();
    offset_ += piece.size();
    if (offset_ == bytes.size()) {
      offset_ = 0;
      ++tensor_;
      while (tensor_ < data_.size() && data_[tensor_].empty()) ++tensor_;
    }
    if (tensor_ < data_.size()) return HostOk();
  }
  if (HostStatus s = link.CommitModel(model_id_); !s.ok()) {
    Error error{s.code(), "commit failed: " + s.error().message};
    Abort(link);
    return error;
  }
  committed_ = true;
  return HostOk();
}

void StageSession::Abort(BoardLink& link) {
  (void)link.UnloadModel(model_id_);  // NOT_FOUND: nothing was staged.
}

}  // namespace wafer::host
