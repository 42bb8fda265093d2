// One process of an mpirun job: rank 0 alone prints, and an error in any process ends them all.

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdio>

#include "runtime/dist/dist.h"

namespace stag::dist {

namespace {

void silence_stdout() {
  std::fflush(stdout);
  int null = open("/dev/null", O_WRONLY);
  if (null >= 0) dup2(null, STDOUT_FILENO);
}

}  // namespace

int run_job(double timeout_seconds, int error_exit, const std::function<int(const rt::Collective&)>& body) {
  Session session(timeout_seconds);
  const rt::Collective& dp = session.collective();
  if (dp.rank != 0) silence_stdout();
  try {
    return body(dp);
  } catch (const JobError& e) {
    fmt::print(stderr, "stag: error: rank {}: {}\n", dp.rank, e.what());
    session.abort(e.exit_code);
  } catch (const std::exception& e) {
    fmt::print(stderr, "stag: error: rank {}: {}\n", dp.rank, e.what());
    session.abort(error_exit);
  }
}

}  // namespace stag::dist
