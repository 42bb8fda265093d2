#pragma once
/// The one exception type the runtime throws for bad files, bad arguments and I/O failures.

#include <stdexcept>
#include <string>

namespace stag::rt {

/// A runtime failure with a message meant for the user: it names the file or argument and what is
/// wrong with it, so callers can print `what()` as is.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace stag::rt
