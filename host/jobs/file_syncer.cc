#include "host/jobs/file_syncer.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log/log.h"

namespace wafer::host {

HostResult<std::unique_ptr<FileSyncer>> FileSyncer::Start(const std::string& path,
                                                          const Clock& clock) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  const int error = errno;
  const int event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0 || event_fd < 0) {
    Error failure{StatusCode::kUnavailable,
                  path + ": cannot open it to fsync it: " + std::strerror(fd < 0 ? error : errno)};
    if (fd >= 0) close(fd);
    if (event_fd >= 0) close(event_fd);
    return failure;
  }
  return std::unique_ptr<FileSyncer>(new FileSyncer(path, clock, fd, event_fd));
}

FileSyncer::FileSyncer(std::string path, const Clock& clock, int fd, int event_fd)
    : path_(std::move(path)),
      clock_(clock),
      fd_(fd),
      event_fd_(event_fd),
      thread_([this] { Loop(); }) {}

FileSyncer::~FileSyncer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
  close(fd_);
  close(event_fd_);
}

void FileSyncer::Request(uint64_t generation) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (generation <= requested_) return;
    requested_ = generation;
  }
  wake_.notify_one();
}

void FileSyncer::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || requested_ > synced_.load(); });
    if (requested_ <= synced_.load()) return;  // Stopping, and everything is on disk.
    const uint64_t target = requested_;  // Written before this fsync starts: covered by it.
    lock.unlock();
    const int64_t start = clock_.NowNanos();
    const bool ok = fdatasync(fd_) == 0;
    const int error = errno;
    fsync_ns_ += static_cast<uint64_t>(clock_.NowNanos() - start);
    ++fsyncs_;
    lock.lock();
    if (!ok) {
      log::Error("store", "fsync of {} failed ({}); no further write counts as durable", path_,
                 std::strerror(error));
      failed_ = true;
      return;
    }
    synced_.store(target);
    const uint64_t one = 1;
    const ssize_t n = write(event_fd_, &one, sizeof(one));
    (void)n;  // A full eventfd already says "look again".
  }
}

}  // namespace wafer::host
