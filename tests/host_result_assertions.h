// gtest helpers for HostResult and HostStatus (common/error.h): a failed check prints the call's
// own Error, the detail that a client's or link's last_error() used to hold.
#pragma once

#include <string>

#include <gtest/gtest.h>

#include "common/error.h"

namespace wafer {

// Passes when `result` is OK; otherwise fails with "CODE: message". For
// EXPECT_TRUE(IsOk(client->Submit(...))).
template <typename T>
::testing::AssertionResult IsOk(const HostResult<T>& result) {
  if (result.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << result.error().ToString();
}

// "OK", or the Error as "CODE: message", for a failure message that shows either.
template <typename T>
std::string Describe(const HostResult<T>& result) {
  return result.ok() ? "OK" : result.error().ToString();
}

}  // namespace wafer
