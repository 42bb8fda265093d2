// One process of an mpirun job: rank 0 alone prints, and an error in any process ends them all.

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <vector>

#include "runtime/dist/dist.h"
#include "runtime/stop_signal.h"

namespace stag::dist {

namespace {

void silence_stdout() {
  std::fflush(stdout);
  int null = open("/dev/null", O_WRONLY);
  if (null >= 0) dup2(null, STDOUT_FILENO);
}

int run_body(const Session& session, int error_exit, const std::function<int(const rt::Collective&)>& body) {
  const rt::Collective& dp = session.collective();
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

// A signal this process received after the last step's vote: the run is complete (rank 0 wrote
// its checkpoint and said where), and the status says a signal ended it, as a stopped run's does.
int settle_late_signal(int code, int rank) {
  int sig = rt::stop_signal();
  if (code != 0 || sig == 0) return code;
  fmt::print(stderr, "stag: rank {}: {} came after the last step; the run is complete\n", rank, sig == SIGINT ? "SIGINT" : "SIGTERM");
  return 128 + sig;
}

// The job's status rides on rank 0's exit alone. A barrier no process passes before every other
// has flushed its last line (rank 0's after its checkpoint), then an all-gather of every
// process's status; then a process stopped by a signal exits 0 and rank 0 with the job's status. Had
// another process exited non-zero first, while rank 0 was still leaving, mpirun would end the job
// and could drop the lines it had not yet forwarded, its own among them.
int job_status(const Session& session, int code) {
  const rt::Collective& dp = session.collective();
  session.barrier();  // every process done: a signal noted from here on came after the last step
  code = settle_late_signal(code, dp.rank);
  std::vector<uint64_t> codes = dp.gather(static_cast<uint64_t>(code));
  if (dp.rank != 0) return code == 128 + SIGINT || code == 128 + SIGTERM ? 0 : code;
  for (uint64_t c : codes)
    if (code == 0 && c != 0) code = static_cast<int>(c);
  return code;
}

}  // namespace

// Why the signals stay handled from MPI_Init to the exit, and the barrier: once one process
// exits non-zero or dies of a signal, mpirun (Open MPI 4.1) ends the job, sending every other
// process SIGTERM a second later and SIGKILL a second after that. A SIGTERM's default action
// would kill a process that got it between its loop's last vote and its exit, and with it the
// job, rank 0 perhaps still writing its checkpoint; so would a process that left at once on one
// while waiting for rank 0. So a signal is only noted up to the last meeting (job_status); past it a process
// has nothing left to lose, and exits at once on a signal rather than wait in MPI_Finalize.
int run_job(double timeout_seconds, int error_exit, const std::function<int(const rt::Collective&)>& body) {
  int code = 0;
  {
    Session session(timeout_seconds);
    rt::hold_stop_signals();
    int rank = session.collective().rank;
    if (rank != 0) silence_stdout();
    code = run_body(session, error_exit, body);
    std::fflush(stdout);
    std::fflush(stderr);
    code = job_status(session, code);
    rt::exit_on_stop_signals();
  }  // MPI_Finalize
  return code;
}

}  // namespace stag::dist
