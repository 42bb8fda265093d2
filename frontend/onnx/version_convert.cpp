// libonnx's version converter in a child process: the answer comes back through a pipe as a
// tag byte ('M' the converted model, 'E' the converter's exception text) and the bytes after it.
#include "frontend/onnx/version_convert.h"

#include <fmt/format.h>

#include <csignal>
#include <cstring>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <onnx/version_converter/convert.h>

// Set under the sanitizers (and libFuzzer, which dumps the current input from it): the child
// clears it, so a crash there is the parent's error to report and not a finding of its own.
extern "C" void __sanitizer_set_death_callback(void (*)()) __attribute__((weak));

namespace stag::onnx_import {

namespace {

void write_all(int fd, const std::string& bytes) {
  for (size_t done = 0; done < bytes.size();) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(2);
    done += static_cast<size_t>(n);
  }
}

std::string read_all(int fd) {
  std::string bytes;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return bytes;
    bytes.append(buf, static_cast<size_t>(n));
  }
}

void die_quietly(int sig) { _exit(128 + sig); }

// The child: no report of its own on a crash (stderr closed, signals end it at once), the
// converter's answer on the pipe, and no exit handlers (the parent's atexit work is not its own).
[[noreturn]] void run_child(int out, const onnx::ModelProto& model, int opset) {
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(nullptr);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, die_quietly);
  int devnull = open("/dev/null", O_WRONLY);
  if (devnull >= 0) dup2(devnull, STDERR_FILENO);
  std::string answer(1, 'M');
  try {
    answer += onnx::version_conversion::ConvertVersion(model, opset).SerializeAsString();
  } catch (const std::exception& e) {
    answer = 'E', answer += e.what();
  }
  write_all(out, answer);
  _exit(0);
}

std::string how_it_ended(int status) {
  if (WIFSIGNALED(status)) return fmt::format("signal {}, {}", WTERMSIG(status), strsignal(WTERMSIG(status)));
  if (WEXITSTATUS(status) > 128) return fmt::format("signal {}, {}", WEXITSTATUS(status) - 128, strsignal(WEXITSTATUS(status) - 128));
  return fmt::format("exit status {}", WEXITSTATUS(status));
}

}  // namespace

std::string convert_version_isolated(onnx::ModelProto& model, int opset) {
  int fds[2];
  if (pipe(fds) != 0) return fmt::format("cannot start the version converter: {}", std::strerror(errno));
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]), close(fds[1]);
    return fmt::format("cannot start the version converter: {}", std::strerror(errno));
  }
  if (pid == 0) close(fds[0]), run_child(fds[1], model, opset);
  close(fds[1]);
  std::string answer = read_all(fds[0]);
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  bool exited = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!exited || answer.empty())
    return fmt::format("libonnx's version converter failed on it ({}): the model is malformed", how_it_ended(status));
  if (answer[0] == 'E') return answer.substr(1);
  if (!model.ParseFromString(answer.substr(1))) return "libonnx's version converter returned a model that does not parse";
  return "";
}

}  // namespace stag::onnx_import
