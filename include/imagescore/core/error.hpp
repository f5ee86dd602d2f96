// Errors: every failure the user can cause is an imagescore::Error whose message is one
// line naming the file (or option) and the problem.
#pragma once

#include <stdexcept>
#include <string>

namespace imagescore {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws Error("<where>: <what>").
[[noreturn]] void fail(const std::string& where, const std::string& what);

}  // namespace imagescore
