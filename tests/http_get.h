// A minimal HTTP/1.0 GET over loopback for tests (no client library needed).
#pragma once

#include <string>

namespace wafer::testing {

// Returns the response body, or "" on any failure. `status` gets the HTTP status code.
std::string HttpGet(int port, const std::string& path, int* status = nullptr);

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreeLoopbackPort();

}  // namespace wafer::testing
