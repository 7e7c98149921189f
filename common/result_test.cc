#include "common/result.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>

namespace wafer {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument();
  return x / 2;
}

Result<int> Quarter(int x) {
  WAFER_ASSIGN_OR_RETURN(int h, Half(x));
  WAFER_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  WAFER_RETURN_IF_ERROR(Half(x).status());
  return OkStatus();
}

TEST(ResultTest, CarriesValueOrStatus) {
  EXPECT_EQ(Quarter(8).value(), 2);
  EXPECT_EQ(Quarter(6).status(), InvalidArgument());
  EXPECT_FALSE(Quarter(3).ok());
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(5).code(), StatusCode::kInvalidArgument);
}

TEST(ResultTest, HoldsMoveOnlyAndDestroysValue) {
  auto shared = std::make_shared<int>(7);
  {
    Result<std::shared_ptr<int>> r(shared);
    EXPECT_EQ(shared.use_count(), 2);
    Result<std::shared_ptr<int>> moved(std::move(r));
    EXPECT_EQ(**moved, 7);
  }
  EXPECT_EQ(shared.use_count(), 1);
  Result<std::unique_ptr<std::string>> u(std::make_unique<std::string>("x"));
  EXPECT_EQ(*std::move(u).value(), "x");
}

TEST(StatusTest, NamesCodes) {
  EXPECT_STREQ(OkStatus().name(), "OK");
  EXPECT_STREQ(DataLoss().name(), "DATA_LOSS");
  EXPECT_STREQ(StatusCodeName(static_cast<StatusCode>(200)), "UNKNOWN_CODE");
}

}  // namespace
}  // namespace wafer
