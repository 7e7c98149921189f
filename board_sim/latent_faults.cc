#include "board_sim/latent_faults.h"

#include <algorithm>

namespace wafer::sim {

void LatentFaults::AddStuckBit(uint32_t phys_row, uint32_t col, uint64_t address) {
  auto [it, added] = stuck_.emplace(PeKey(phys_row, col), address);
  if (!added) it->second = std::min(it->second, address);
}

void LatentFaults::AddBadLink(uint32_t phys_row, uint32_t col, bool south) {
  links_.insert(LinkKey(phys_row, col, south));
}

void LatentFaults::ClearPe(uint32_t phys_row, uint32_t col) {
  stuck_.erase(PeKey(phys_row, col));
  links_.erase(LinkKey(phys_row, col, false));
  links_.erase(LinkKey(phys_row, col, true));
}

std::optional<uint64_t> LatentFaults::StuckAddress(uint32_t phys_row, uint32_t col) const {
  auto it = stuck_.find(PeKey(phys_row, col));
  if (it == stuck_.end()) return std::nullopt;
  return it->second;
}

bool LatentFaults::LinkFails(uint32_t phys_row, uint32_t col, bool south) const {
  return links_.count(LinkKey(phys_row, col, south)) != 0;
}

}  // namespace wafer::sim
