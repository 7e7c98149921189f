#include "board_sim/functional_model.h"

#include <algorithm>
#include <utility>

namespace wafer::sim {

FunctionalModel::FunctionalModel(const ModelArch& arch, const ModelStage& stage,
                                 uint32_t slots, uint32_t context,
                                 std::vector<StagedTensor> tensors)
    : arch_(arch),
      stage_(stage),
      slots_(slots),
      context_(context),
      tensors_(std::move(tensors)) {}

Status FunctionalModel::Write(uint32_t index, uint64_t offset, std::span<const std::byte> data) {
  if (index >= tensors_.size()) return OutOfRange();
  WAFER_RETURN_IF_ERROR(tensors_[index].Write(offset, data));
  converted_ += data.size();
  return OkStatus();
}

Status FunctionalModel::Commit() {
  if (engine_ == nullptr) {
    Result<std::unique_ptr<LlamaEngine>> engine =
        LlamaEngine::Create(arch_, std::span<StagedTensor>(tensors_), slots_, context_, stage_);
    if (!engine.ok()) return engine.status();
    engine_ = std::move(engine).value();
    return OkStatus();
  }
  for (StagedTensor& t : tensors_) {
    if (t.written()) WAFER_RETURN_IF_ERROR(engine_->ReplaceTensor(t));
  }
  return OkStatus();
}

void FunctionalModel::Poison(uint32_t index, uint64_t begin, uint64_t end) {
  if (index >= tensors_.size()) return;
  StagedTensor& t = tensors_[index];
  end = std::min(end, t.byte_size());
  if (begin >= end) return;
  t.Poison(begin, end);
  if (engine_ == nullptr) return;
  const uint64_t size = t.dtype() == DType::kF32 ? 4 : 2;
  const uint64_t first = begin / size;
  const uint64_t last = (end + size - 1) / size;
  // Cannot fail: the tensor is the engine's and the range inside it. RESOURCE_EXHAUSTED (no
  // memory to repack it) would leave it intact: the loss is then unobservable.
  engine_->PoisonTensor(t.role(), t.layer(), first, last - first).IgnoreError();
}

uint64_t FunctionalModel::weight_host_bytes() const {
  uint64_t bytes = engine_ ? engine_->weight_bytes() : 0;
  for (const StagedTensor& t : tensors_) bytes += t.host_bytes();
  return bytes;
}

uint64_t FunctionalModel::kv_host_bytes() const {
  uint64_t bytes = 0;
  for (uint32_t s = 0; engine_ && s < slots_; ++s) bytes += engine_->kv_bytes(s);
  return bytes;
}

}  // namespace wafer::sim
