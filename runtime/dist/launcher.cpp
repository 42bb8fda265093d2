// What the launcher's environment says about the job, with or without MPI in the build.

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>

#include "runtime/dist/dist.h"

namespace stag::dist {

namespace {

int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : 0;
}

}  // namespace

int launched_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (int n = env_int(name); n > 0) return n;
  return 1;
}

int local_ranks() {
  int n = env_int("OMPI_COMM_WORLD_LOCAL_SIZE");
  return n > 0 ? n : launched_ranks();
}

int threads_per_process() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / local_ranks()); }

}  // namespace stag::dist
