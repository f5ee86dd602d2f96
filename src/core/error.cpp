#include "imagescore/core/error.hpp"

namespace imagescore {

void fail(const std::string& where, const std::string& what) { throw Error(where + ": " + what); }

OptionError::OptionError(std::string field, std::string problem)
    : Error(field + ": " + problem), field_(std::move(field)), problem_(std::move(problem)) {}

void fail_option(const std::string& field, const std::string& problem) { throw OptionError(field, problem); }

}  // namespace imagescore
