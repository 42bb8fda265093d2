// A build without MPI: training across processes is unavailable, and says so.

#include "runtime/dist/dist.h"
#include "runtime/error.h"

#include <cstdlib>

namespace stag::dist {

bool available() { return false; }

Session::Session(double timeout_seconds, bool) : timeout_(timeout_seconds) {
  throw rt::Error("this stag was built without MPI, so it cannot train across processes; install Open MPI "
                  "(Debian libopenmpi-dev openmpi-bin) and rebuild");
}

Session::~Session() = default;

void Session::barrier() const {}

void Session::abort(int code) const { std::_Exit(code); }

}  // namespace stag::dist
