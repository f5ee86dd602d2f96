#include "imagescore/core/error.hpp"

namespace imagescore {

void fail(const std::string& where, const std::string& what) { throw Error(where + ": " + what); }

}  // namespace imagescore
