#include "imagescore/score/scores_table.hpp"

#include <charconv>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

#include "imagescore/core/text.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"
#include "imagescore/core/progress.hpp"

namespace imagescore {
namespace {

const std::vector<std::string> kFixedColumns = {"id", "path", "label", "pred", "correct"};

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string text;
  for (std::size_t i = 0; i < items.size(); ++i) text += (i ? separator : "") + items[i];
  return text;
}

// Reads RFC 4180 records one at a time from a file, in a buffer of bounded size,
// tracking the line each record starts on so that errors can point at it (a quoted field
// may span lines). A record (one row) may be at most kMaxRecordBytes long.
class CsvReader {
 public:
  explicit CsvReader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
    check_input_file(path);
    if (!in_) fail(path, std::string("cannot open: ") + std::strerror(errno));
  }

  // False at the end of the file. A final line break ends the last record, it does not
  // start an empty one.
  bool next(std::vector<std::string>& fields, std::size_t& line) {
    record_start_ = consumed_;
    if (at_end()) return false;
    fields.clear();
    line = line_;
    for (;;) {
      fields.push_back(peek() == '"' ? quoted_field(line) : plain_field());
      if (at_end()) return true;
      char separator = get();
      if (separator == '\r') get();  // plain_field/quoted_field only stop at "\r\n"
      if (separator != ',') {
        ++line_;
        return true;
      }
    }
  }

 private:
  static constexpr std::size_t kMaxRecordBytes = std::size_t(1) << 24;

  // Makes at least `n` characters available unless the file ends first.
  bool available(std::size_t n) {
    if (buffer_.size() - pos_ >= n) return true;
    buffer_.erase(0, pos_);
    pos_ = 0;
    char chunk[1 << 16];
    while (buffer_.size() < n && in_) {
      in_.read(chunk, sizeof chunk);
      buffer_.append(chunk, std::size_t(in_.gcount()));
    }
    if (in_.bad()) fail(path_, "read error");
    return buffer_.size() >= n;
  }
  bool at_end() { return !available(1); }
  char peek() { return buffer_[pos_]; }
  char get() {
    if (++consumed_ - record_start_ > kMaxRecordBytes)
      error(line_, "a row longer than " + std::to_string(kMaxRecordBytes) + " bytes");
    return buffer_[pos_++];
  }
  bool at_line_end() { return peek() == '\n' || (peek() == '\r' && available(2) && buffer_[pos_ + 1] == '\n'); }

  std::string plain_field() {
    std::string field;
    while (!at_end() && peek() != ',' && !at_line_end()) {
      if (peek() == '"') error(line_, "quote inside an unquoted field (quote the whole field)");
      field += get();
    }
    return field;
  }

  // `line` is where the record starts: an unterminated quote is reported there.
  std::string quoted_field(std::size_t line) {
    std::string field;
    get();  // opening quote
    for (;;) {
      if (at_end()) error(line, "unterminated quoted field");
      char c = get();
      if (c == '"') {
        if (!at_end() && peek() == '"') {
          field += '"';
          get();
          continue;
        }
        break;
      }
      if (c == '\n') ++line_;
      field += c;
    }
    if (!at_end() && peek() != ',' && !at_line_end()) error(line_, "unexpected text after a closing quote");
    return field;
  }

  [[noreturn]] void error(std::size_t line, const std::string& what) const {
    fail(path_ + ":" + std::to_string(line), what);
  }

  const std::string path_;
  std::ifstream in_;
  std::string buffer_;
  std::size_t pos_ = 0;
  std::size_t line_ = 1;
  std::uint64_t consumed_ = 0, record_start_ = 0;
};

bool parse_class(const std::string& text, int& value) { return parse_number(text, value) && value >= 0; }

// A class id sizes per-class tables downstream (selection, statistics): one edited cell
// must not ask for gigabytes.
void check_class_id(const std::string& where, const std::string& field, int value) {
  if (value >= kMaxClasses)
    fail(where, field + " " + std::to_string(value) + " is above the limit of " + std::to_string(kMaxClasses - 1));
}

// Spreadsheets save CSV with a UTF-8 byte-order mark before the first header name.
void drop_byte_order_mark(std::vector<std::string>& header) {
  if (!header.empty() && header[0].rfind("\xEF\xBB\xBF", 0) == 0) header[0].erase(0, 3);
}

const std::vector<std::string> kNameColumns = {"label_name", "pred_name"};

bool has_name_columns(const std::vector<std::string>& header) {
  return header.size() >= kFixedColumns.size() + 2 && header[kFixedColumns.size()] == kNameColumns[0] &&
         header[kFixedColumns.size() + 1] == kNameColumns[1];
}

// Records the name of class `id`, which must agree with every earlier row.
void learn_class_name(const std::string& where, int id, const std::string& name, std::vector<std::string>& names) {
  if (name.empty()) fail(where, "class " + std::to_string(id) + " has an empty name");
  if (std::size_t(id) >= names.size()) names.resize(std::size_t(id) + 1);
  std::string& known = names[std::size_t(id)];
  if (known.empty())
    known = name;
  else if (known != name)
    fail(where, "class " + std::to_string(id) + " is named '" + name + "' here but '" + known + "' above");
}

ScoreRow parse_row(const std::string& where, const std::vector<std::string>& fields,
                   const std::vector<std::string>& header, std::vector<std::string>* class_names) {
  if (fields.size() != header.size()) {
    fail(where, "expected " + std::to_string(header.size()) + " fields (as in the header), got " +
                    std::to_string(fields.size()));
  }
  ScoreRow row;
  if (!parse_number(fields[0], row.id)) fail(where, "id '" + fields[0] + "' is not a non-negative integer");
  row.path = fields[1];
  if (!fields[2].empty() && !parse_class(fields[2], row.label)) {
    fail(where, "label '" + fields[2] + "' is neither empty nor a non-negative integer");
  }
  if (!parse_class(fields[3], row.pred)) fail(where, "pred '" + fields[3] + "' is not a non-negative integer");
  check_class_id(where, "label", row.label);
  check_class_id(where, "pred", row.pred);
  const std::string& correct = fields[4];
  if (!correct.empty()) {
    if (correct != "0" && correct != "1") fail(where, "correct '" + correct + "' is neither empty, 0 nor 1");
    if (row.label < 0) fail(where, "correct is " + correct + " but the label is empty");
    if ((correct == "1") != (row.label == row.pred)) {
      fail(where, "correct is " + correct + " but label is " + fields[2] + " and pred is " + fields[3]);
    }
  }
  std::size_t first_value = kFixedColumns.size();
  if (class_names) {
    const std::string& label_name = fields[first_value];
    if (label_name.empty() != (row.label < 0))
      fail(where, "label_name '" + label_name + "' does not go with label '" + fields[2] + "'");
    if (row.label >= 0) learn_class_name(where, row.label, label_name, *class_names);
    learn_class_name(where, row.pred, fields[first_value + 1], *class_names);
    first_value += 2;
  }
  for (std::size_t i = first_value; i < fields.size(); ++i) {
    double value = 0;
    if (!parse_number(fields[i], value) || !std::isfinite(value)) {
      fail(where, header[i] + " '" + fields[i] + "' is not a finite number");
    }
    row.values.push_back(value);
  }
  return row;
}

void check_header(const std::string& where, const std::vector<std::string>& header) {
  for (std::size_t i = 0; i < kFixedColumns.size(); ++i) {
    if (i >= header.size() || header[i] != kFixedColumns[i]) {
      fail(where, "missing column '" + kFixedColumns[i] + "' (a scores file starts with " +
                      join(kFixedColumns, ",") + ")");
    }
  }
  std::set<std::string> seen;
  for (std::size_t i = kFixedColumns.size() + (has_name_columns(header) ? 2 : 0); i < header.size(); ++i) {
    if (header[i].empty()) fail(where, "empty name for column " + std::to_string(i + 1));
    if (!seen.insert(header[i]).second) fail(where, "duplicate column '" + header[i] + "'");
  }
}

}  // namespace

const std::vector<std::string>& score_columns() {
  static const std::vector<std::string> columns = {"image_score", "msp",    "margin",
                                                   "neg_entropy", "energy", "max_logit"};
  return columns;
}

ScoreWriter::ScoreWriter(const std::string& path, std::vector<std::string> value_columns,
                         std::vector<std::string> class_names)
    : path_(path),
      tmp_path_(path + ".tmp." + std::to_string(::getpid())),
      columns_(std::move(value_columns)),
      class_names_(std::move(class_names)) {
  check_output_path(path_);
  out_.open(tmp_path_, std::ios::binary | std::ios::trunc);
  if (!out_) fail(path_, std::string("cannot write: ") + std::strerror(errno));
  out_ << join(kFixedColumns, ",");
  if (!class_names_.empty()) out_ << ',' << join(kNameColumns, ",");
  for (const std::string& name : columns_) out_ << ',' << csv_field(name);
  out_ << '\n';
}

ScoreWriter::~ScoreWriter() {
  if (committed_) return;
  out_.close();
  std::remove(tmp_path_.c_str());
}

void ScoreWriter::write(const ScoreRow& row) {
  if (row.values.size() != columns_.size()) {
    fail(path_, "row for image " + std::to_string(row.id) + " has " + std::to_string(row.values.size()) +
                    " values, expected " + std::to_string(columns_.size()));
  }
  out_ << row.id << ',' << csv_field(row.path) << ',';
  if (row.label >= 0) out_ << row.label;
  out_ << ',' << row.pred << ',';
  if (row.label >= 0) out_ << (row.label == row.pred ? '1' : '0');
  if (!class_names_.empty()) {
    auto name = [&](int id) -> const std::string& {
      if (std::size_t(id) >= class_names_.size() || class_names_[std::size_t(id)].empty())
        fail(path_, "class " + std::to_string(id) + " of image " + std::to_string(row.id) + " has no name");
      return class_names_[std::size_t(id)];
    };
    out_ << ',';
    if (row.label >= 0) out_ << csv_field(name(row.label));
    out_ << ',' << csv_field(name(row.pred));
  }
  for (std::size_t i = 0; i < row.values.size(); ++i) {
    // A non-finite value would make the file unreadable (and -inf must never leak).
    if (!std::isfinite(row.values[i])) {
      fail(path_, "non-finite " + columns_[i] + " for image " + std::to_string(row.id));
    }
    out_ << ',' << format_double(row.values[i]);
  }
  out_ << '\n';
}

void ScoreWriter::commit() {
  if (committed_) return;
  out_.flush();
  if (!out_) fail(path_, "write failed (disk full?)");
  out_.close();
  if (out_.fail()) fail(path_, "write failed on close (disk full?)");
  check_interrupted();  // after Ctrl-C nothing is published (the destructor removes the file)
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    fail(path_, std::string("cannot rename temporary file into place: ") + std::strerror(errno));
  }
  committed_ = true;
}

bool ScoreTable::has_labels() const {
  for (const ScoreRow& row : rows) {
    if (row.label < 0) return false;
  }
  return true;
}

std::size_t ScoreTable::column(const std::string& name) const {
  for (std::size_t i = 0; i < value_columns.size(); ++i) {
    if (value_columns[i] == name) return i;
  }
  fail(path, "no column '" + name + "' (columns: " + join(value_columns, ", ") + ")");
}

std::vector<double> ScoreTable::values(const std::string& name) const {
  std::size_t index = column(name);
  std::vector<double> result;
  result.reserve(rows.size());
  for (const ScoreRow& row : rows) result.push_back(row.values[index]);
  return result;
}

struct ScoreReader::Impl {
  std::string path;
  CsvReader csv;
  std::vector<std::string> header, fields;
  bool names = false;
  std::vector<std::string> class_names;
  explicit Impl(const std::string& p) : path(p), csv(p) {}
};

ScoreReader::ScoreReader(const std::string& path) : impl_(std::make_unique<Impl>(path)) {
  std::size_t line = 0;
  if (!impl_->csv.next(impl_->header, line)) fail(path, "empty file, expected a header line");
  drop_byte_order_mark(impl_->header);
  check_header(path + ":" + std::to_string(line), impl_->header);
  impl_->names = has_name_columns(impl_->header);
  value_columns_.assign(impl_->header.begin() + std::ptrdiff_t(kFixedColumns.size() + (impl_->names ? 2 : 0)),
                        impl_->header.end());
}

ScoreReader::~ScoreReader() = default;

bool ScoreReader::has_class_names() const { return impl_->names; }

const std::vector<std::string>& ScoreReader::class_names() const { return impl_->class_names; }

bool ScoreReader::next(ScoreRow& row) {
  std::size_t line = 0;
  if (!impl_->csv.next(impl_->fields, line)) return false;
  row = parse_row(impl_->path + ":" + std::to_string(line), impl_->fields, impl_->header,
                  impl_->names ? &impl_->class_names : nullptr);
  return true;
}

ScoreTable read_score_table(const std::string& path) {
  ScoreReader reader(path);
  ScoreTable table;
  table.path = path;
  table.value_columns = reader.value_columns();
  ScoreRow row;
  while (reader.next(row)) table.rows.push_back(std::move(row));
  table.class_names = reader.class_names();
  return table;
}

std::vector<SelectionRow> read_selection(const std::string& path) {
  CsvReader reader(path);
  std::vector<std::string> fields;
  std::size_t line = 0;
  if (!reader.next(fields, line)) fail(path, "empty file, expected a header line");
  drop_byte_order_mark(fields);
  const bool names = fields == std::vector<std::string>{"id", "path", "pseudo_label", "pseudo_label_name", "score"};
  if (!names && fields != std::vector<std::string>{"id", "path", "pseudo_label", "score"})
    fail(path + ":" + std::to_string(line),
         "not a selection file (expected the header id,path,pseudo_label,score or id,path,pseudo_label,pseudo_label_name,score)");
  const std::size_t count = names ? 5 : 4, score = count - 1;
  std::vector<std::string> class_names;
  std::vector<SelectionRow> rows;
  while (reader.next(fields, line)) {
    const std::string where = path + ":" + std::to_string(line);
    if (fields.size() != count) fail(where, "expected " + std::to_string(count) + " fields, got " + std::to_string(fields.size()));
    SelectionRow row;
    if (!parse_number(fields[0], row.id)) fail(where, "id '" + fields[0] + "' is not a non-negative integer");
    row.path = fields[1];
    if (!parse_class(fields[2], row.pseudo_label)) fail(where, "pseudo_label '" + fields[2] + "' is not a non-negative integer");
    check_class_id(where, "pseudo_label", row.pseudo_label);
    if (names) learn_class_name(where, row.pseudo_label, fields[3], class_names);
    if (!parse_number(fields[score], row.score) || !std::isfinite(row.score))
      fail(where, "score '" + fields[score] + "' is not a finite number");
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace imagescore
