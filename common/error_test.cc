#include "common/error.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace wafer {
namespace {

HostResult<int> ParsePort(const std::string& text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
    return Error{StatusCode::kInvalidArgument, "'" + text + "' is not a port number"};
  }
  const int port = std::stoi(text);
  if (port > 65535) return Error{StatusCode::kOutOfRange, "port " + text + " is above 65535"};
  return port;
}

HostResult<int> DoublePort(const std::string& text) {
  WAFER_HOST_ASSIGN_OR_RETURN(const int port, ParsePort(text));
  return 2 * port;
}

HostStatus CheckPort(const std::string& text) {
  WAFER_HOST_RETURN_IF_ERROR(ParsePort(text));
  return HostOk();
}

TEST(ErrorTest, ResultCarriesValueOrCodeWithMessage) {
  EXPECT_EQ(DoublePort("80").value(), 160);
  const auto bad = DoublePort("http");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status(), InvalidArgument());
  EXPECT_EQ(bad.error().message, "'http' is not a port number");
  EXPECT_EQ(DoublePort("70000").error().code, StatusCode::kOutOfRange);
}

TEST(ErrorTest, StatusWithoutValue) {
  EXPECT_TRUE(CheckPort("22").ok());
  EXPECT_EQ(CheckPort("22").code(), StatusCode::kOk);
  const HostStatus bad = CheckPort("");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().ToString(), "INVALID_ARGUMENT: '' is not a port number");
}

TEST(ErrorTest, ContextIsPrefixed) {
  const Error error{StatusCode::kNotFound, "no such file"};
  EXPECT_EQ(error.WithContext("config /etc/waferd.yaml").message,
            "config /etc/waferd.yaml: no such file");
  EXPECT_EQ(error.message, "no such file");  // the const& overload copies
  EXPECT_EQ(Error(error).WithContext("a").WithContext("b").message, "b: a: no such file");
}

TEST(ErrorTest, AnOkErrorIsTurnedIntoInternal) {
  const HostResult<int> r(Error{StatusCode::kOk, "bug"});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.code(), StatusCode::kInternal);
  const HostStatus s(Error{StatusCode::kOk, "bug"});
  EXPECT_EQ(s.code(), StatusCode::kInternal);
}

TEST(ErrorTest, HoldsMoveOnlyValues) {
  HostResult<std::unique_ptr<std::string>> r(std::make_unique<std::string>("x"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(**r, "x");
  std::unique_ptr<std::string> taken = std::move(r).value();
  EXPECT_EQ(*taken, "x");
}

}  // namespace
}  // namespace wafer
