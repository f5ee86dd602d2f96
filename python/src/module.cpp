// imagescore._core: the library's errors become Python exceptions with the same one-line
// message: Error -> ImageScoreError (a ValueError), OptionError -> OptionError (with
// .field, the library's name of the option), Interrupted -> KeyboardInterrupt.
#include "bindings.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/progress.hpp"
#include "imagescore/core/version.hpp"

PYBIND11_MODULE(_core, m) {
  namespace py = pybind11;
  using namespace imagescore;
  m.doc() = "imagescore's library, bound with pybind11 (the Python API is the package imagescore)";
  m.attr("__version__") = IMAGESCORE_VERSION;

  static py::exception<Error> error(m, "ImageScoreError", PyExc_ValueError);
  static py::exception<OptionError> option_error(m, "OptionError", error.ptr());
  py::register_exception_translator([](std::exception_ptr thrown) {
    try {
      if (thrown) std::rethrow_exception(thrown);
    } catch (const Interrupted&) {
      PyErr_SetNone(PyExc_KeyboardInterrupt);
    } catch (const OptionError& e) {
      py::object exception = py::handle(option_error.ptr())(e.what());
      exception.attr("field") = e.field();
      exception.attr("problem") = e.problem();
      PyErr_SetObject(option_error.ptr(), exception.ptr());
    } catch (const Error& e) {
      error(e.what());
    }
  });

  python::bind_models(m);
  python::bind_profiles(m);
  python::bind_reference(m);
  python::bind_scores(m);
  python::bind_analysis(m);
}
