// Every fake device the firmware core needs, bundled for tests.
#pragma once

#include "common/clock.h"
#include "firmware/platform.h"
#include "firmware/testing/fake_firmware_flash.h"
#include "firmware/testing/fake_wafer.h"

namespace wafer::fw::testing {

struct FakePlatform {
  FakeWafer wafer;
  FakeFirmwareFlash flash;
  FakeSignatureVerifier verifier;
  FakeClock clock{1'000'000};

  FakePlatform() { wafer.flash = &flash; }
  FakePlatform(const FakePlatform&) = delete;
  FakePlatform& operator=(const FakePlatform&) = delete;

  Platform platform() { return Platform{wafer, flash, verifier, clock}; }
};

}  // namespace wafer::fw::testing
