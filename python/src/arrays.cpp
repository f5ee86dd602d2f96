// Python arrays into the library's views, each checked before its memory is read.
#include <csignal>
#include <mutex>

#include "bindings.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/progress.hpp"

namespace imagescore::python {
namespace {

std::string shape_text(const std::vector<py::ssize_t>& shape) {
  std::string text;
  for (auto d : shape) text += (text.empty() ? "" : ", ") + std::to_string(d);
  return "[" + text + "]";
}

std::vector<py::ssize_t> shape_of(const py::array& a) { return {a.shape(), a.shape() + a.ndim()}; }

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

bool is_sequence(py::handle value) { return py::isinstance<py::list>(value) || py::isinstance<py::tuple>(value); }

// A float32 array whose rows are images of `tap`: [R, *shape] or [R, numel], C-contiguous.
py::array tap_block(py::handle value, const TapInfo& tap, const std::string& what) {
  py::array a = as_array(value, what);
  if (!a.dtype().is(py::dtype::of<float>()))
    fail(what, "activations must be float32, got " + dtype_name(a) + " (convert with .astype(numpy.float32) or .float())");
  std::vector<py::ssize_t> expected = {-1};
  for (auto d : tap.shape) expected.push_back(py::ssize_t(d));
  const auto shape = shape_of(a);
  bool matches = shape.size() == expected.size();
  for (std::size_t i = 1; matches && i < shape.size(); ++i) matches = shape[i] == expected[i];
  const bool flat = shape.size() == 2 && std::size_t(shape[1]) == tap.numel();
  if (!matches && !flat) {
    std::vector<py::ssize_t> per_image(expected.begin() + 1, expected.end());
    std::string forms = "[images, " + shape_text(per_image).substr(1);
    if (per_image.size() > 1) forms += " or [images, " + std::to_string(tap.numel()) + "]";
    fail(what, "activations must have the shape " + forms + ", got " + shape_text(shape));
  }
  if (!(a.flags() & py::array::c_style)) a = py::array::ensure(a, py::array::c_style);
  return a;
}

}  // namespace

py::array as_array(py::handle value, const std::string& what) {
  if (value.is_none()) fail(what, "missing (got None)");
  py::object object = py::reinterpret_borrow<py::object>(value);
  // A torch tensor: .numpy() shares the memory of a CPU tensor.
  if (py::hasattr(object, "detach") && py::hasattr(object, "numpy")) object = object.attr("detach")().attr("cpu")().attr("numpy")();
  if (!py::isinstance<py::array>(object)) {
    if (!py::isinstance<py::iterable>(object))
      fail(what, "expected an array, got " + py::str(py::type::of(object)).cast<std::string>());
    object = py::module_::import("numpy").attr("asarray")(object);
  }
  return object.cast<py::array>();
}

TapArrays tap_arrays(py::handle value, const TapInfo& tap, std::size_t rows) {
  const std::string what = "tap '" + tap.name + "'";
  TapArrays out;
  out.view.numel = tap.numel();
  if (!is_sequence(value)) {
    py::array a = tap_block(value, tap, what);
    if (std::size_t(a.shape(0)) != rows)
      fail(what, "has activations of " + std::to_string(a.shape(0)) + " images, expected " + std::to_string(rows));
    out.view = TapView::contiguous(static_cast<const float*>(a.data()), rows, tap.numel());
    out.keep.push_back(std::move(a));
    return out;
  }
  py::sequence blocks = py::reinterpret_borrow<py::sequence>(value);
  if (blocks.size() == 0) fail(what, "an empty list of activation blocks");
  std::size_t block_rows = 0, total = 0;
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    py::array a = tap_block(blocks[b], tap, what + " block " + std::to_string(b));
    const auto r = std::size_t(a.shape(0));
    if (b == 0) block_rows = r;
    if (r != block_rows || r == 0)
      fail(what, "activation blocks must have the same number of rows (block 0 has " + std::to_string(block_rows) +
                     ", block " + std::to_string(b) + " has " + std::to_string(r) + ")");
    total += r;
    out.view.blocks.push_back(static_cast<const float*>(a.data()));
    out.keep.push_back(std::move(a));
  }
  if (total < rows || total - rows >= block_rows)
    fail(what, "activation blocks hold " + std::to_string(total) + " rows for " + std::to_string(rows) +
                   " images (only the last block may have padding rows)");
  out.view.block_rows = block_rows;
  return out;
}

std::vector<TapArrays> taps_arrays(py::handle values, const std::vector<TapInfo>& taps, std::size_t rows) {
  std::vector<TapArrays> out;
  if (py::isinstance<py::dict>(values)) {
    py::dict by_name = py::reinterpret_borrow<py::dict>(values);
    for (const auto& item : by_name) {
      const auto name = py::str(item.first).cast<std::string>();
      bool known = false;
      for (const auto& t : taps) known = known || t.name == name;
      if (!known) {
        std::string names;
        for (const auto& t : taps) names += (names.empty() ? "" : ", ") + t.name;
        fail("tap '" + name + "'", "is not a tap of the profiles (they have: " + names + ")");
      }
    }
    for (const auto& t : taps) {
      if (!by_name.contains(t.name)) fail("tap '" + t.name + "'", "missing from the activations");
      out.push_back(tap_arrays(by_name[py::str(t.name)], t, rows));
    }
    return out;
  }
  if (!is_sequence(values)) fail("activations", "expected a dict by tap name or a list in tap order");
  py::sequence list = py::reinterpret_borrow<py::sequence>(values);
  if (list.size() != taps.size())
    fail("activations", "expected " + std::to_string(taps.size()) + " taps, got " + std::to_string(list.size()));
  for (std::size_t l = 0; l < taps.size(); ++l) out.push_back(tap_arrays(list[l], taps[l], rows));
  return out;
}

std::size_t rows_of(py::handle values, const std::string& what) {
  py::object first;
  if (py::isinstance<py::dict>(values)) {
    py::dict d = py::reinterpret_borrow<py::dict>(values);
    if (d.size() == 0) fail(what, "no taps given");
    first = py::reinterpret_borrow<py::object>(d.begin()->second);
  } else if (is_sequence(values)) {
    py::sequence s = py::reinterpret_borrow<py::sequence>(values);
    if (s.size() == 0) fail(what, "no taps given");
    first = s[0];
  } else {
    fail(what, "expected a dict by tap name or a list in tap order");
  }
  if (is_sequence(first)) fail(what, "give the number of images: activation blocks may hold padding rows");
  py::array a = as_array(first, what);
  if (a.ndim() < 1) fail(what, "activations need one row per image");
  return std::size_t(a.shape(0));
}

py::array_t<float> float_matrix(py::handle value, const std::string& what, std::size_t cols) {
  py::array a = as_array(value, what);
  if (!a.dtype().is(py::dtype::of<float>())) fail(what, "must be float32, got " + dtype_name(a));
  if (a.ndim() != 2 || (cols > 0 && std::size_t(a.shape(1)) != cols))
    fail(what, "must have the shape [images, " + (cols > 0 ? std::to_string(cols) : std::string("classes")) + "], got " +
                   shape_text(shape_of(a)));
  if (a.shape(1) == 0) fail(what, "has no columns");
  return py::array_t<float, py::array::c_style>::ensure(a);
}

namespace {

template <typename T>
std::vector<T> vector_of(py::handle value, const std::string& what, std::size_t rows, const char* kind, bool (*accepts)(char)) {
  py::array a = as_array(value, what);
  if (a.ndim() != 1) fail(what, "must be one value per image, got the shape " + shape_text(shape_of(a)));
  if (!accepts(a.dtype().kind())) fail(what, std::string("must hold ") + kind + ", got " + dtype_name(a));
  if (rows > 0 && std::size_t(a.shape(0)) != rows)
    fail(what, "has " + std::to_string(a.shape(0)) + " values, expected " + std::to_string(rows));
  auto typed = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
  return {typed.data(), typed.data() + typed.size()};
}

}  // namespace

std::vector<std::int64_t> int_vector(py::handle value, const std::string& what, std::size_t rows) {
  return vector_of<std::int64_t>(value, what, rows, "integers", [](char k) { return k == 'i' || k == 'u'; });
}

std::vector<double> double_vector(py::handle value, const std::string& what, std::size_t rows) {
  return vector_of<double>(value, what, rows, "numbers", [](char k) { return k == 'f' || k == 'i' || k == 'u'; });
}

std::vector<bool> bool_vector(py::handle value, const std::string& what, std::size_t rows) {
  auto bytes = vector_of<std::uint8_t>(value, what, rows, "booleans", [](char k) { return k == 'b'; });
  return {bytes.begin(), bytes.end()};
}

// ---- interruption ----------------------------------------------------------------------

namespace {
std::mutex interrupt_mutex;
int interruptible_calls = 0;
struct sigaction python_sigint;

void on_sigint(int) { request_interrupt(); }
}  // namespace

void begin_interruptible() {
  std::lock_guard<std::mutex> lock(interrupt_mutex);
  if (interruptible_calls++ > 0) return;
  clear_interrupt();
  struct sigaction action = {};
  action.sa_handler = on_sigint;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &python_sigint);
}

void end_interruptible() {
  std::lock_guard<std::mutex> lock(interrupt_mutex);
  if (--interruptible_calls > 0) return;
  sigaction(SIGINT, &python_sigint, nullptr);
}

}  // namespace imagescore::python
