#include "common/log/log.h"

#include <atomic>
#include <chrono>
#include <ctime>
#include <iterator>
#include <memory>
#include <mutex>

#include <spdlog/details/console_globals.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "common/log/internal/line_format.h"

namespace wafer::log {
namespace {

constexpr const char* kLevelNames[] = {"trace", "debug", "info", "warn", "error", "off"};
constexpr const char* kFormatNames[] = {"text", "json"};

spdlog::level::level_enum ToSpdlog(Level level) {
  switch (level) {
    case Level::kTrace: return spdlog::level::trace;
    case Level::kDebug: return spdlog::level::debug;
    case Level::kInfo: return spdlog::level::info;
    case Level::kWarn: return spdlog::level::warn;
    case Level::kError: return spdlog::level::err;
    case Level::kOff: return spdlog::level::off;
  }
  return spdlog::level::off;
}

Level FromSpdlog(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace: return Level::kTrace;
    case spdlog::level::debug: return Level::kDebug;
    case spdlog::level::info: return Level::kInfo;
    case spdlog::level::warn: return Level::kWarn;
    case spdlog::level::err: return Level::kError;
    default: return Level::kError;  // critical: this seam never writes it.
  }
}

// Turns spdlog's record (the component rides in logger_name) into one text or JSON line.
class LineFormatter final : public spdlog::formatter {
 public:
  explicit LineFormatter(Format format) : format_(format) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto since_epoch = msg.time.time_since_epoch();
    const int64_t ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count();
    std::string line;
    const std::string_view component(msg.logger_name.data(), msg.logger_name.size());
    const std::string_view message(msg.payload.data(), msg.payload.size());
    if (format_ == Format::kJson) {
      line = internal::JsonLine(ms, FromSpdlog(msg.level), component, message);
    } else {
      line = internal::TextLine(ms, FromSpdlog(msg.level), component, message);
    }
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(format_);
  }

 private:
  const Format format_;
};

using FileSink = spdlog::sinks::stdout_sink_base<spdlog::details::console_mutex>;

struct State {
  std::atomic<Level> threshold{Level::kInfo};
  std::mutex mutex;  // Guards sink (the pointer; the sink locks its own writes).
  std::shared_ptr<spdlog::sinks::sink> sink;
};

std::shared_ptr<spdlog::sinks::sink> MakeSink(Format format, std::FILE* out) {
  auto sink = std::make_shared<FileSink>(out);
  sink->set_formatter(std::make_unique<LineFormatter>(format));
  return sink;
}

State& GetState() {
  // Never destroyed: threads that outlive main() may still log while the process exits.
  static State* state = [] {
    auto* s = new State;
    s->sink = MakeSink(Format::kText, stderr);
    return s;
  }();
  return *state;
}

}  // namespace

void Configure(const Options& options) {
  State& state = GetState();
  auto sink = MakeSink(options.format, options.out != nullptr ? options.out : stderr);
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    state.sink = std::move(sink);
  }
  state.threshold.store(options.level, std::memory_order_relaxed);
}

const char* LevelName(Level level) { return kLevelNames[static_cast<int>(level)]; }
const char* FormatName(Format format) { return kFormatNames[static_cast<int>(format)]; }

HostResult<Level> ParseLevel(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(Level::kOff); ++i) {
    if (name == kLevelNames[i]) return static_cast<Level>(i);
  }
  return wafer::Error{StatusCode::kInvalidArgument,
                      "'" + std::string(name) +
                          "' is not a log level (trace, debug, info, warn, error or off)"};
}

HostResult<Format> ParseFormat(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(Format::kJson); ++i) {
    if (name == kFormatNames[i]) return static_cast<Format>(i);
  }
  return wafer::Error{StatusCode::kInvalidArgument,
                      "'" + std::string(name) + "' is not a log format (text or json)"};
}

std::string BoardComponent(uint32_t index) { return "board[" + std::to_string(index) + "]"; }

bool Enabled(Level level) {
  const Level threshold = GetState().threshold.load(std::memory_order_relaxed);
  return level != Level::kOff && threshold != Level::kOff && level >= threshold;
}

void Write(Level level, std::string_view component, std::string_view message) {
  if (!Enabled(level)) return;
  State& state = GetState();
  std::shared_ptr<spdlog::sinks::sink> sink;
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    sink = state.sink;
  }
  try {
    const spdlog::details::log_msg msg(spdlog::string_view_t(component.data(), component.size()),
                                       ToSpdlog(level),
                                       spdlog::string_view_t(message.data(), message.size()));
    sink->log(msg);
  } catch (...) {
    // A log line must never take its caller down (a full disk, a closed stderr): it is lost.
  }
}

}  // namespace wafer::log
