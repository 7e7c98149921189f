// The devices the firmware core drives, handed over once at init.
#pragma once

#include "common/clock.h"
#include "firmware/hal/firmware_flash.h"
#include "firmware/hal/signature_verifier.h"
#include "firmware/hal/wafer.h"

namespace wafer::fw {

// Borrowed references: every device outlives the firmware objects built from this.
struct Platform {
  hal::Wafer& wafer;
  hal::FirmwareFlash& flash;
  hal::SignatureVerifier& verifier;
  const Clock& clock;  // Stamps error-log records.
};

}  // namespace wafer::fw
