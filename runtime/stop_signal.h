#pragma once
/// Stopping a training run cleanly on SIGINT (Ctrl-C) or SIGTERM: the first signal asks the
/// loop to stop after its current step, so that it can write a final checkpoint and return; a
/// second one ends the process at once. Every training loop polls stop_requested() between
/// steps and ends with throw_stop() (runtime/trainer.cpp; a GAN loop does the same).

#include <signal.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace stag::rt {

/// While alive, SIGINT and SIGTERM request a stop instead of killing the process, and a second
/// signal calls _exit(128 + signal) at once (a checkpoint being written then is abandoned and its
/// temporary file removed; the previous one stays intact, see AtomicFileWriter). The former handlers come back on
/// destruction. Installing clears any earlier request. Not reentrant: one scope at a time. Under
/// hold_stop_signals() a scope does nothing: the handlers stay, and so does an earlier request.
class StopSignalScope {
 public:
  StopSignalScope();
  ~StopSignalScope();
  StopSignalScope(const StopSignalScope&) = delete;
  StopSignalScope& operator=(const StopSignalScope&) = delete;

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

/// For a process of a data-parallel job, from the job's start to the process's exit: SIGINT and
/// SIGTERM request a stop as under a StopSignalScope (a second one ends the process at once), and
/// never kill it by their default action. A process that died of one mid-job would make `mpirun`
/// end the job at once, killing the others before their last step, checkpoint or message; a
/// request before the first step stops the job after that step, one after the last is left to
/// the job (stop_signal()). Clears any earlier request; the handlers are never restored.
void hold_stop_signals();
/// From now on (a job's process past MPI_Finalize, every process's output flushed and rank 0's
/// checkpoint written) SIGINT and SIGTERM end the process at once with 128 + the signal, silently:
/// there is nothing left to stop, and `mpirun`, ending a job one process of which exited non-zero,
/// sends SIGTERM to the others while they leave.
void exit_on_stop_signals();

/// True once SIGINT or SIGTERM arrived (or request_stop was called). Cheap: poll it every step.
bool stop_requested();
/// The signal that asked to stop, 0 if none did.
int stop_signal();
/// Asks to stop as if `signal` had arrived (tests; a loop stopping for a reason of its own).
void request_stop(int signal);

/// Thrown by a training loop that stopped on request after saving what it had. The command
/// prints what() (where the checkpoint is) and exits with exit_code: 128 + the signal, i.e.
/// 130 for SIGINT and 143 for SIGTERM, as a shell reports a process the signal killed.
struct StopRequested : std::runtime_error {
  StopRequested(int signal, const std::string& message);
  int signal;
  int exit_code;
};

/// Throws StopRequested for a stop by `signal` (the pending one unless given): "stopped by
/// SIGINT after step STEP; " + `message`.
[[noreturn]] void throw_stop(int64_t step, const std::string& message, int signal = stop_signal());

}  // namespace stag::rt
