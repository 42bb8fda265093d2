#pragma once
/// Data-parallel training's transport, kept out of the runtime library: MPI (Open MPI) when
/// stag is built with it (find_package(MPI)); without it every entry point but the launcher
/// check says the feature is unavailable. The trainer sees only rt::Collective.

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "runtime/trainer.h"

namespace stag::dist {

/// Whether this build can train across processes.
bool available();

/// The processes a launcher (mpirun, mpiexec) started this one among, from its environment
/// (Open MPI's OMPI_COMM_WORLD_SIZE, else PMI_SIZE); 1 when not launched so.
int launched_ranks();

/// The processes of this job on this machine (OMPI_COMM_WORLD_LOCAL_SIZE), for thread counts.
int local_ranks();

/// The machine's cores shared among this job's processes on it (at least 1): the default
/// --threads of a process.
int threads_per_process();

struct Transport;

/// MPI for the life of the object. Each collective waits at most `timeout_seconds` for the
/// other processes; then it prints which rank gave up waiting on what and ends the whole job
/// (MPI_Abort), so a process that died or hangs never leaves the others waiting forever.
class Session {
 public:
  /// `node_memory`: when every process is on this machine, buffers of up to 4 MB are averaged
  /// through memory they share; false averages every buffer by messages, as across machines.
  explicit Session(double timeout_seconds, bool node_memory = true);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  const rt::Collective& collective() const { return collective_; }
  /// Ends every process of the job with `code`: after an error here the others must not wait.
  [[noreturn]] void abort(int code) const;
  /// Returns once every process has called it (or ends the job after the timeout, as a collective does).
  void barrier() const;

 private:
  rt::Collective collective_;
  double timeout_;
  std::shared_ptr<Transport> transport_;  ///< the means under way; null without MPI
};

/// An error that ends the whole job with its own exit status.
struct JobError : std::runtime_error {
  JobError(int code, const std::string& message) : std::runtime_error(message), exit_code(code) {}
  int exit_code;
};

/// Runs `body` as one process of a job mpirun started, with MPI alive throughout: every rank but
/// 0 prints nothing on stdout, and an exception out of `body` prints `stag: error: rank R: ...`
/// and ends every process of the job (exit status: a JobError's, else `error_exit`), so that
/// none waits for it. SIGINT and SIGTERM stay handled to the exit (rt::hold_stop_signals): one
/// before the first step stops the job after it, one after the last step's vote leaves the run
/// complete and returns 128 + the signal, with a line saying so. Returns what `body` returns
/// otherwise. Throws rt::Error, before anything runs, when this build has no MPI. `stag train`
/// and the trainers `stag build --processes` writes run so.
int run_job(double timeout_seconds, int error_exit, const std::function<int(const rt::Collective&)>& body);

}  // namespace stag::dist
