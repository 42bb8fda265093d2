// Preloaded into one process of an mpirun job by tests/cli/mpi_signals.sh: holds rank
// STAG_TEST_HOLD_RANK where its training ends (its first MPI_Ibarrier or MPI_Finalize) until the
// file STAG_TEST_HOLD_FILE exists, as a slow last checkpoint would, so that the test can signal
// another process after that one's last step and before the job ends, every time.

#include <mpi.h>
#include <unistd.h>

#include <cstdlib>

namespace {

bool held = false;

void hold_at_end() {
  const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
  const char* want = std::getenv("STAG_TEST_HOLD_RANK");
  const char* file = std::getenv("STAG_TEST_HOLD_FILE");
  if (held || !rank || !want || !file || std::atoi(rank) != std::atoi(want)) return;
  held = true;
  for (int i = 0; i < 6000 && access(file, F_OK) != 0; ++i) usleep(10000);  // at most a minute
}

}  // namespace

extern "C" int MPI_Ibarrier(MPI_Comm comm, MPI_Request* request) {
  hold_at_end();
  return PMPI_Ibarrier(comm, request);
}

extern "C" int MPI_Finalize() {
  hold_at_end();
  return PMPI_Finalize();
}
