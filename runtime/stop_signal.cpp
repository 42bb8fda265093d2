// The handlers only touch lock-free atomics and call write/unlink/_exit: nothing else is
// async-signal-safe, and the loop does the real work (the checkpoint) on its own thread.
#include "runtime/stop_signal.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "runtime/io.h"

namespace stag::rt {

namespace {

std::atomic<int> g_signal{0};
std::atomic<bool> g_leaving{false};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);
bool g_held = false;  // hold_stop_signals() was called: the scopes leave the handlers alone

void say(const char* text) { [[maybe_unused]] auto n = ::write(STDERR_FILENO, text, std::strlen(text)); }

void on_signal(int sig) {
  if (g_leaving.load()) ::_exit(128 + sig);
  if (g_signal.exchange(sig) != 0) {
    remove_pending_temp_file();
    say("\nsecond signal: stopping now, without a final checkpoint\n");
    ::_exit(128 + sig);
  }
  say(sig == SIGINT ? "\nSIGINT: stopping after this step (Ctrl-C again to stop at once)\n"
                    : "\nSIGTERM: stopping after this step\n");
}

void install(int sig, struct sigaction* old) {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // reads and waits elsewhere go on; the loop polls the flag
  ::sigaction(sig, &sa, old);
}

}  // namespace

StopSignalScope::StopSignalScope() {
  if (g_held) return;
  g_signal = 0;
  install(SIGINT, &old_int_);
  install(SIGTERM, &old_term_);
}

StopSignalScope::~StopSignalScope() {
  if (g_held) return;
  ::sigaction(SIGINT, &old_int_, nullptr);
  ::sigaction(SIGTERM, &old_term_, nullptr);
}

void hold_stop_signals() {
  struct sigaction old {};
  g_signal = 0;
  g_leaving = false;
  install(SIGINT, &old);
  install(SIGTERM, &old);
  g_held = true;
}

void exit_on_stop_signals() { g_leaving = true; }

bool stop_requested() { return g_signal.load(std::memory_order_relaxed) != 0; }

int stop_signal() { return g_signal.load(); }

void request_stop(int signal) { g_signal = signal; }

StopRequested::StopRequested(int sig, const std::string& message)
    : std::runtime_error(message), signal(sig), exit_code(128 + sig) {}

void throw_stop(int64_t step, const std::string& message, int sig) {
  const char* name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
  throw StopRequested(sig, fmt::format("stopped by {} after step {}; {}", name, step, message));
}

}  // namespace stag::rt
