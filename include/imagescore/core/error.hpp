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

// A bad value of an option or field the user chose. `field` names it as the library
// knows it (norm, rho, batch_size); a front end names it as the user wrote it (the
// command line's --norm, an experiment file's key 'norm'). what() is "<field>: <problem>".
class OptionError : public Error {
 public:
  OptionError(std::string field, std::string problem);
  const std::string& field() const { return field_; }
  const std::string& problem() const { return problem_; }

 private:
  std::string field_, problem_;
};

// Throws OptionError(field, problem).
[[noreturn]] void fail_option(const std::string& field, const std::string& problem);

}  // namespace imagescore
