#include "board_sim/llama/staged_tensor.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <new>
#include <stdexcept>
#include <utility>

#include "board_sim/llama/internal/kernels.h"

namespace wafer::sim {
namespace {

// Past this a tensor is refused (RESOURCE_EXHAUSTED) before any size arithmetic: padded to
// whole panels it still fits a size_t many times over.
constexpr uint64_t kMaxTensorBytes = uint64_t{1} << 48;

bool IsNorm(TensorRole role) {
  return role == TensorRole::kAttnNorm || role == TensorRole::kMlpNorm ||
         role == TensorRole::kFinalNorm;
}

uint64_t ElementBytes(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

uint64_t SaturatingByteSize(const std::vector<uint64_t>& shape, DType dtype) {
  uint64_t bytes = ElementBytes(dtype);
  for (uint64_t d : shape) {
    if (__builtin_mul_overflow(bytes, d, &bytes)) return UINT64_MAX;
  }
  return bytes;
}

}  // namespace

StagedTensor::StagedTensor(TensorRole role, uint32_t layer, DType dtype,
                           std::vector<uint64_t> shape)
    : role_(role),
      layer_(layer),
      dtype_(dtype),
      shape_(std::move(shape)),
      byte_size_(SaturatingByteSize(shape_, dtype)),
      layout_(!IsNorm(role) && shape_.size() == 2 ? Layout::kMatrix : Layout::kBytes) {}

StagedTensor::StagedTensor(StagedTensor&&) noexcept = default;
StagedTensor& StagedTensor::operator=(StagedTensor&&) noexcept = default;
StagedTensor::~StagedTensor() = default;

bool StagedTensor::complete() const {
  if (byte_size_ == 0) return true;
  return covered_.size() == 1 && covered_.begin()->first == 0 &&
         covered_.begin()->second == byte_size_;
}

uint64_t StagedTensor::host_bytes() const {
  return (matrix_ ? matrix_->bytes() : 0) + bytes_.capacity() + norm_.capacity() * sizeof(float);
}

Status StagedTensor::Write(uint64_t offset, std::span<const std::byte> data) {
  if (offset > byte_size_ || data.size() > byte_size_ - offset) return OutOfRange();
  if (data.empty()) return OkStatus();
  try {
    if (!written()) {
      if (byte_size_ > kMaxTensorBytes) return ResourceExhausted();
      if (layout_ == Layout::kMatrix) {
        matrix_ = std::make_unique<internal::PackedMatrix>(dtype_, shape_[0], shape_[1]);
      } else {
        bytes_.assign(byte_size_, std::byte{0});
        // Taken now, so that converting the norm never allocates.
        if (IsNorm(role_)) norm_.resize(byte_size_ / ElementBytes(dtype_));
      }
    }
    if (layout_ == Layout::kMatrix) {
      matrix_->Store(offset, data);
    } else {
      std::copy(data.begin(), data.end(), bytes_.begin() + static_cast<ptrdiff_t>(offset));
    }
    Cover(offset, offset + data.size());
  } catch (const std::bad_alloc&) {
    if (!written()) Clear();
    return ResourceExhausted();
  } catch (const std::length_error&) {
    if (!written()) Clear();
    return ResourceExhausted();
  }
  if (IsNorm(role_) && complete()) {
    internal::ConvertRow(internal::WeightMatrix{dtype_, bytes_.data(), 1, norm_.size()}, 0,
                         norm_.data());
  }
  return OkStatus();
}

void StagedTensor::Poison(uint64_t begin, uint64_t end) {
  end = std::min(end, byte_size_);
  if (!written() || begin >= end) return;
  if (layout_ == Layout::kMatrix) {
    // Stored a block at a time: losing SRAM must not need memory.
    std::array<std::byte, 4096> ones;
    ones.fill(std::byte{0xFF});
    for (uint64_t b = begin; b < end; b += ones.size()) {
      matrix_->Store(b, std::span(ones).first(std::min<uint64_t>(ones.size(), end - b)));
    }
    return;
  }
  std::fill(bytes_.begin() + static_cast<ptrdiff_t>(begin),
            bytes_.begin() + static_cast<ptrdiff_t>(end), std::byte{0xFF});
  if (IsNorm(role_) && complete()) {
    internal::ConvertRow(internal::WeightMatrix{dtype_, bytes_.data(), 1, norm_.size()}, 0,
                         norm_.data());
  }
}

internal::PackedMatrix StagedTensor::TakeMatrix() {
  internal::PackedMatrix m = matrix_ ? std::move(*matrix_) : internal::PackedMatrix();
  Clear();
  return m;
}

std::vector<float> StagedTensor::TakeNorm() {
  std::vector<float> n = std::move(norm_);
  Clear();
  return n;
}

void StagedTensor::Clear() {
  matrix_.reset();
  std::vector<std::byte>().swap(bytes_);
  std::vector<float>().swap(norm_);
  covered_.clear();
}

void StagedTensor::Cover(uint64_t begin, uint64_t end) {
  auto next = covered_.upper_bound(begin);
  if (next != covered_.begin()) {
    auto prev = std::prev(next);
    if (prev->second >= begin) {  // Touches or overlaps the range before: extend it.
      prev->second = std::max(prev->second, end);
      while (next != covered_.end() && next->first <= prev->second) {
        prev->second = std::max(prev->second, next->second);
        next = covered_.erase(next);
      }
      return;
    }
  }
  while (next != covered_.end() && next->first <= end) {
    end = std::max(end, next->second);
    next = covered_.erase(next);
  }
  covered_.emplace(begin, end);
}

}  // namespace wafer::sim
