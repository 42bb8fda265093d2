// Validation helpers shared by the .npy and safetensors readers.
#include "runtime/validate.h"

#include <fmt/format.h>

namespace stag::rt {

void check_bool_bytes(const Tensor& t, const std::string& file) {
  auto b = t.bytes();
  for (size_t i = 0; i < b.size(); ++i)
    if (static_cast<unsigned>(b[i]) > 1)
      throw Error(fmt::format("{}: bool element {} has byte value {} (must be 0 or 1)", file, i,
                              static_cast<unsigned>(b[i])));
}

}  // namespace stag::rt
