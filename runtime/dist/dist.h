#pragma once
/// Data-parallel training's transport, kept out of the runtime library: MPI (Open MPI) when
/// stag is built with it (find_package(MPI)); without it every entry point but the launcher
/// check says the feature is unavailable. The trainer sees only rt::Collective.

#include <memory>
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

/// MPI for the life of the object. Each collective waits at most `timeout_seconds` for the
/// other processes; then it prints which rank gave up waiting on what and ends the whole job
/// (MPI_Abort), so a process that died or hangs never leaves the others waiting forever.
class Session {
 public:
  explicit Session(double timeout_seconds);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  const rt::Collective& collective() const { return collective_; }
  /// Ends every process of the job with `code`: after an error here the others must not wait.
  [[noreturn]] void abort(int code) const;

 private:
  rt::Collective collective_;
  double timeout_;
};

}  // namespace stag::dist
