// Latent hardware faults of the simulated wafer: stuck-at SRAM bits and failing fabric links that
// ECC and link-level retry mask in normal operation, so nothing reports them (no event, no ECC
// count) until a built-in self-test (SimWafer::TestSram, TestFabricLinks, RunKnownAnswer) finds
// them. They belong to the hardware: they survive a power cycle, keyed by physical row and usable
// column (the simulator does not model which physical PE of a row a usable column lands on).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>

namespace wafer::sim {

// Not thread-safe; owned by SimWafer.
class LatentFaults {
 public:
  // A stuck bit in the word at byte `address` of the PE's SRAM (several may share a PE).
  void AddStuckBit(uint32_t phys_row, uint32_t col, uint64_t address);
  // The link leaving the PE eastward (`south` false) or southward (`south` true) fails.
  void AddBadLink(uint32_t phys_row, uint32_t col, bool south);
  // Forgets the PE's stuck bits and the links leaving it: a spare took its place.
  void ClearPe(uint32_t phys_row, uint32_t col);

  // The lowest stuck word address of the PE (the first a March test meets), if any.
  std::optional<uint64_t> StuckAddress(uint32_t phys_row, uint32_t col) const;
  bool LinkFails(uint32_t phys_row, uint32_t col, bool south) const;

  // Every faulty PE (lowest stuck address) and link, ordered by physical row, then column.
  const std::map<uint64_t, uint64_t>& stuck() const { return stuck_; }
  const std::set<uint64_t>& links() const { return links_; }
  static uint64_t PeKey(uint32_t phys_row, uint32_t col) { return (uint64_t{phys_row} << 32) | col; }
  static uint64_t LinkKey(uint32_t phys_row, uint32_t col, bool south) {
    return (PeKey(phys_row, col) << 1) | (south ? 1u : 0u);
  }

 private:
  std::map<uint64_t, uint64_t> stuck_;  // PeKey -> lowest stuck word address.
  std::set<uint64_t> links_;            // LinkKey.
};

}  // namespace wafer::sim
