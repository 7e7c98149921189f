// A minimal HTTP/1.0 GET over loopback for tests (no client library needed).
#pragma once

#include <string>
#include <string_view>

namespace wafer::testing {

// Returns the response body, or "" on any failure. `status` gets the HTTP status code.
// `authorization`, when not empty, is sent as the Authorization header's value.
std::string HttpGet(int port, const std::string& path, int* status = nullptr,
                    const std::string& authorization = "");

// Percent-encodes `text` for a URL query string (RFC 3986: everything but A-Z a-z 0-9 - . _ ~),
// so that PromQL like `rate(x{a=~"b"}[1m])` can go in `?query=`.
std::string UrlEncode(std::string_view text);

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreeLoopbackPort();

}  // namespace wafer::testing
