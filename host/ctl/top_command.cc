#include "host/ctl/top_command.h"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>

#include "host/ctl/ctl_output.h"
#include "host/ctl/exit_codes.h"
#include "host/ctl/top_view.h"

namespace wafer::host {
namespace {

std::atomic<bool> g_stop{false};

extern "C" void OnStopSignal(int) { g_stop.store(true); }

// The terminal in raw-ish mode (no echo, no line buffering; signals still work) on the
// alternate screen with the cursor hidden, for the life of the object.
class TerminalSession {
 public:
  TerminalSession() {
    if (tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      restore_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    Write("\x1b[?1049h\x1b[?25l");
  }
  ~TerminalSession() {
    Write("\x1b[?25h\x1b[?1049l");
    if (restore_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  TerminalSession(const TerminalSession&) = delete;
  TerminalSession& operator=(const TerminalSession&) = delete;

  static void Write(const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
      const ssize_t n = write(STDOUT_FILENO, s.data() + done, s.size() - done);
      if (n <= 0) return;
      done += static_cast<size_t>(n);
    }
  }
  static std::pair<int, int> Size() {
    winsize ws{};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
      return {ws.ws_col, ws.ws_row};
    }
    return {120, 40};
  }

 private:
  termios saved_{};
  bool restore_ = false;
};

// Waits up to `ms` for a key on stdin; true when it was q (or stdin ended).
bool WaitForQuit(int ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!g_stop.load()) {
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          end - std::chrono::steady_clock::now())
                                          .count());
    if (left <= 0) return false;
    pollfd fd{STDIN_FILENO, POLLIN, 0};
    const int ready = poll(&fd, 1, std::min(left, 100));
    if (ready <= 0) continue;
    char key = 0;
    const ssize_t n = read(STDIN_FILENO, &key, 1);
    if (n == 0) return true;  // End of input.
    if (n == 1 && (key == 'q' || key == 'Q')) return true;
  }
  return true;
}

}  // namespace

int RunTop(const TopOptions& options, std::ostream& out, std::ostream& err) {
  g_stop.store(false);
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);

  // One answer is waited for at most this long, so that a silent daemon shows as such within a
  // refresh or two.
  const int wait_ms = std::max(1000, std::min(options.timeout_ms, options.interval_ms));
  TopView view;
  std::unique_ptr<AdminClient> admin;
  std::unique_ptr<TerminalSession> terminal;
  if (options.interactive) terminal = std::make_unique<TerminalSession>();
  int exit_code = kExitOk;
  for (uint32_t refresh = 1; !g_stop.load(); ++refresh) {
    if (!admin) {
      auto connected = AdminClient::Connect(options.admin_endpoint, options.keys);
      if (!connected.ok()) {
        terminal.reset();
        err << "waferctl: bad endpoint '" << options.admin_endpoint << "'\n";
        exit_code = kExitUsage;
        break;
      }
      admin = std::move(connected).value();
    }
    StatusReply reply;
    const HostStatus s = admin->QueryStatus(&reply, wait_ms);
    if (s.ok()) {
      view.Add(std::move(reply));
      exit_code = kExitOk;
    } else {
      // A fresh socket next time: a reply to this request must not be taken for the next one's,
      // and a restarted daemon is found again at once.
      view.SetUnreachable(s.error().message);
      exit_code = s.code() == StatusCode::kDataLoss ? kExitProtocol : kExitUnreachable;
      admin.reset();
    }
    if (options.json) {
      out << DumpJson(view.Json()) << std::endl;
    } else if (terminal) {
      const auto [width, height] = TerminalSession::Size();
      std::string screen = "\x1b[H\x1b[2J";
      for (const std::string& line : view.Render(options.admin_endpoint, width, height)) {
        screen += line + "\r\n";
      }
      TerminalSession::Write(screen);
    } else {
      for (const std::string& line : view.Render(options.admin_endpoint, 0, 0)) {
        out << line << "\n";
      }
      out << std::endl;
    }
    if (options.count != 0 && refresh >= options.count) break;
    if (terminal) {
      if (WaitForQuit(options.interval_ms)) break;
    } else {
      const auto end = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(options.interval_ms);
      while (!g_stop.load() && std::chrono::steady_clock::now() < end) {
        poll(nullptr, 0, 50);
      }
    }
  }
  terminal.reset();
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  // Interactive or stopped by a signal: the operator ended it, whatever the last answer was.
  if (options.count == 0 && exit_code != kExitUsage) return kExitOk;
  if (exit_code == kExitUnreachable && !options.json) {
    err << "waferctl: " << (view.has_sample() ? "the last refresh got no answer: " : "")
        << "no answer from waferd at " << options.admin_endpoint << "\n";
  }
  return exit_code;
}

}  // namespace wafer::host
