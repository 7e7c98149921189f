// Makes a file's writes durable behind its writer's back: the writer numbers its writes in
// generations and calls Request(g) once generation g is written (write() returned); a thread of
// the syncer's own fdatasyncs the file, each fsync covering every generation requested before
// it started, publishes synced() and signals event_fd(). The writer never waits for the disk.
//
// The writer may keep writing while an fsync runs: what it writes then belongs to a later
// generation and is covered by a later fsync.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/error.h"
#include "common/result.h"

namespace wafer::host {

// Request() is called from one thread; synced(), failed() and the counters from any.
class FileSyncer {
 public:
  // Opens `path` (which must exist; its writer keeps it, same inode, while the syncer runs) and
  // starts the thread. Returns the syncer, or UNAVAILABLE (the message naming the file) when it
  // cannot be opened.
  // REQUIRES: `clock` outlives the syncer (it times the fsyncs, from the syncer's thread).
  static HostResult<std::unique_ptr<FileSyncer>> Start(const std::string& path, const Clock& clock);
  // Syncs what was requested, then stops the thread.
  ~FileSyncer();

  // Generation `generation` (increasing) is written; make it durable.
  void Request(uint64_t generation);
  // The last generation known to be on disk.
  uint64_t synced() const { return synced_.load(); }
  // An fsync failed: the kernel may have dropped the pages, so nothing written before or after
  // can be called durable again; synced() stops moving.
  bool failed() const { return failed_.load(); }
  // Readable (an eventfd) each time synced() moved; the reader drains it.
  int event_fd() const { return event_fd_; }
  uint64_t fsyncs() const { return fsyncs_.load(); }
  double fsync_seconds() const { return static_cast<double>(fsync_ns_.load()) / 1e9; }

 private:
  FileSyncer(std::string path, const Clock& clock, int fd, int event_fd);
  void Loop();

  const std::string path_;
  const Clock& clock_;
  const int fd_;
  const int event_fd_;
  std::mutex mu_;
  std::condition_variable wake_;
  uint64_t requested_ = 0;  // Guarded by mu_.
  bool stopping_ = false;   // Guarded by mu_.
  std::atomic<uint64_t> synced_{0};
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> fsyncs_{0};
  std::atomic<uint64_t> fsync_ns_{0};
  std::thread thread_;  // Last: started once everything above is set.
};

}  // namespace wafer::host
