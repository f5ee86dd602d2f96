// The scores file written by `imagescore score`: CSV with the columns
//   id,path,label,pred,correct[,label_name,pred_name],<score columns>
// (label, correct and label_name empty where unknown), plus optional per-tap columns
// `tap:<name>` (docs/formats.md, section 5).
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace imagescore {

// The confidence scores every scoring run writes, in column order. Higher = more
// trustworthy for each of them.
const std::vector<std::string>& score_columns();  // image_score, msp, margin, neg_entropy, energy, max_logit

// Class ids in scores and selection files are below this (ImageNet-21k has 21,841
// classes); larger ids are refused before anything is sized by them.
constexpr int kMaxClasses = 1000000;

struct ScoreRow {
  std::size_t id = 0;          // position of the image in its data source
  std::string path;
  int label = -1;              // -1: unknown
  int pred = 0;
  std::vector<double> values;  // one per score column (and per-tap column), in header order
};

// Streams rows to a temporary file; commit() renames it into place. Without commit()
// (an exception or a kill) no file appears under the final name.
class ScoreWriter {
 public:
  // With class names (the model's), the columns label_name and pred_name follow
  // `correct`; without, the file has none (as files of imagescore 0.x).
  ScoreWriter(const std::string& path, std::vector<std::string> value_columns,
              std::vector<std::string> class_names = {});
  ~ScoreWriter();
  void write(const ScoreRow& row);
  void commit();

 private:
  std::string path_;
  std::string tmp_path_;
  std::vector<std::string> columns_;
  std::vector<std::string> class_names_;
  std::ofstream out_;
  bool committed_ = false;
};

// A scores file read back. Columns beyond the fixed ones (id,path,label,pred,correct)
// are numeric.
struct ScoreTable {
  std::string path;
  std::vector<std::string> value_columns;
  // Class names by id from the label_name and pred_name columns ("" for an id no row
  // names); empty when the file has no such columns.
  std::vector<std::string> class_names;
  std::vector<ScoreRow> rows;
  bool has_labels() const;  // true if every row has a label
  // Index of a value column; throws Error("<file>: no column '<name>' (columns: ...)").
  std::size_t column(const std::string& name) const;
  std::vector<double> values(const std::string& name) const;
};
ScoreTable read_score_table(const std::string& path);

// A scores file read row by row, in memory that does not grow with its length.
class ScoreReader {
 public:
  explicit ScoreReader(const std::string& path);  // reads and checks the header
  ~ScoreReader();
  const std::vector<std::string>& value_columns() const { return value_columns_; }
  bool has_class_names() const;
  bool next(ScoreRow& row);  // false at the end of the file
  // The class names of the rows read so far (see ScoreTable::class_names).
  const std::vector<std::string>& class_names() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<std::string> value_columns_;
};

// A selection file (id,path,pseudo_label[,pseudo_label_name],score, written by
// write_selection) read back.
struct SelectionRow {
  std::size_t id = 0;
  std::string path;
  int pseudo_label = 0;
  double score = 0;
};
std::vector<SelectionRow> read_selection(const std::string& path);

}  // namespace imagescore
