// The Python module imagescore._core: pybind11 bindings of the library's public API. One
// file per part (models and data, profiles, scores, selection and analysis); this header
// holds what they share: turning Python arrays into the library's views after checking
// them, and running long library calls without the GIL.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imagescore/models/model.hpp"
#include "imagescore/score/fitted.hpp"
#include "imagescore/score/profile.hpp"

namespace imagescore::python {

namespace py = pybind11;

void bind_models(py::module_& m);
void bind_profiles(py::module_& m);
void bind_reference(py::module_& m);
void bind_scores(py::module_& m);
void bind_analysis(py::module_& m);

// ---- arrays from Python ----------------------------------------------------------------
// Every array is checked (dtype, shape, row count) before the library touches its memory;
// a failed check raises ImageScoreError naming `what`. A torch tensor is taken through
// .detach().cpu().numpy(), which shares its memory when it is on the CPU.

py::array as_array(py::handle value, const std::string& what);

// Float32 activations of one tap for `rows` images: one array [rows, *shape] or
// [rows, numel], or a list of blocks [R, *shape] of R rows each (the last block may hold
// padding rows after the images), as a model's evaluation chunks leave them. C-contiguous
// arrays are used in place; others are copied once.
struct TapArrays {
  TapView view;
  std::vector<py::array> keep;  // the arrays the view points into
};
TapArrays tap_arrays(py::handle value, const TapInfo& tap, std::size_t rows);

// The activations of every tap of `taps`: a dict by tap name (exactly those taps) or a
// sequence in the order of `taps`.
std::vector<TapArrays> taps_arrays(py::handle values, const std::vector<TapInfo>& taps, std::size_t rows);

// Rows of a float32 matrix [rows, cols] (logits), C-contiguous afterwards.
py::array_t<float> float_matrix(py::handle value, const std::string& what, std::size_t cols);
// One value per image; `rows` = 0 takes the array's length.
std::vector<std::int64_t> int_vector(py::handle value, const std::string& what, std::size_t rows = 0);
std::vector<double> double_vector(py::handle value, const std::string& what, std::size_t rows = 0);
std::vector<bool> bool_vector(py::handle value, const std::string& what, std::size_t rows = 0);

// The rows of the first array of `values` (a dict or a sequence of arrays).
std::size_t rows_of(py::handle values, const std::string& what);

// ---- profiles --------------------------------------------------------------------------

// A profile set (the image score alone) and the name that errors give it.
struct Profiles {
  ProfileSet set;
  std::string name = "profiles";
};
std::vector<TapInfo> profile_taps(const ProfileSet& set);

// A reference set (every fitted score) and the name that errors give it (its file, or
// "profiles"). Immutable from Python, so that scorers may share it.
struct Reference {
  std::shared_ptr<const ReferenceSet> set;
  std::string name = "profiles";
};

// Checked options, as the command line takes them.
ProfileOptions profile_options(double rho, const std::string& norm, const std::string& scale, bool global);
std::pair<std::size_t, std::size_t> checked_shard(const std::pair<std::size_t, std::size_t>& shard);

// ---- models ----------------------------------------------------------------------------

// A model in Python: what the library needs to know of it (classes, taps with their
// shapes, default taps, weights hash) for profiles and their checks. Its forward pass runs
// in Python; forward() here fails.
std::shared_ptr<Model> describe_model(const std::vector<std::string>& classes,
                                      const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& taps,
                                      const std::vector<std::string>& default_taps, const std::string& weights_hash,
                                      const std::string& arch, const std::vector<int>& input_shape);

// The hidden taps and `output` of a model by name, in the model's order (empty: defaults).
std::vector<TapInfo> chosen_taps(const Model& model, const std::vector<std::string>& names);
// Taps as a Python list of (name, shape).
py::list tap_list(const std::vector<TapInfo>& taps);

// Runs `call` without the GIL, with SIGINT interrupting the library's long loops (the
// library then throws Interrupted, which Python receives as KeyboardInterrupt).
void begin_interruptible();
void end_interruptible();
template <typename Call>
auto interruptible(Call&& call) -> decltype(call()) {
  py::gil_scoped_release release;
  begin_interruptible();
  struct End {
    ~End() { end_interruptible(); }
  } end;
  return call();
}

}  // namespace imagescore::python
