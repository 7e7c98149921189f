#include "host/jobs/file_syncer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace wafer::host {
namespace {

class FileSyncerTest : public ::testing::Test {
 protected:
  FileSyncerTest() {
    char pattern[] = "/tmp/wafer-syncer-XXXXXX";
    dir_ = mkdtemp(pattern);
    path_ = dir_ + "/log";
    fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  }
  ~FileSyncerTest() override {
    close(fd_);
    std::filesystem::remove_all(dir_);
  }
  // Waits (bounded) until `syncer` reports `generation` synced, draining its eventfd.
  static void AwaitSynced(const FileSyncer& syncer, uint64_t generation) {
    while (syncer.synced() < generation) {
      pollfd p{syncer.event_fd(), POLLIN, 0};
      ASSERT_EQ(poll(&p, 1, 10000), 1) << "no signal for generation " << generation;
      uint64_t value;
      ASSERT_EQ(read(syncer.event_fd(), &value, sizeof(value)),
                static_cast<ssize_t>(sizeof(value)));
    }
  }

  std::string dir_, path_;
  int fd_ = -1;
};

TEST_F(FileSyncerTest, GenerationsBecomeDurableInOrderAndAreSignalled) {
  auto syncer = FileSyncer::Start(path_, SystemClock::Get());
  ASSERT_TRUE(syncer.ok()) << syncer.error().ToString();
  EXPECT_EQ((*syncer)->synced(), 0u);
  for (uint64_t g = 1; g <= 20; ++g) {
    ASSERT_EQ(write(fd_, "record\n", 7), 7);
    (*syncer)->Request(g);
    if (g % 5 == 0) AwaitSynced(**syncer, g);  // Several requests may share one fsync.
  }
  EXPECT_EQ((*syncer)->synced(), 20u);
  EXPECT_GE((*syncer)->fsyncs(), 4u);
  EXPECT_LE((*syncer)->fsyncs(), 20u);
  EXPECT_FALSE((*syncer)->failed());
  (*syncer)->Request(3);  // An old generation asks nothing new.
  EXPECT_EQ((*syncer)->synced(), 20u);
}

TEST_F(FileSyncerTest, AMissingFileIsUnavailableNamingIt) {
  auto syncer = FileSyncer::Start(dir_ + "/absent", SystemClock::Get());
  EXPECT_EQ(syncer.status().code(), StatusCode::kUnavailable);
  const std::string detail = syncer.ok() ? std::string() : syncer.error().message;
  EXPECT_NE(detail.find(dir_ + "/absent"), std::string::npos) << detail;
}

}  // namespace
}  // namespace wafer::host
