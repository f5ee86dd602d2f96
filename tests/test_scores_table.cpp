#include "imagescore/core/text.hpp"
#include "imagescore/score/scores_table.hpp"
#include "imagescore/select/select.hpp"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "test_util.hpp"

namespace imagescore {
namespace {

using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

ScoreRow row(std::size_t id, std::string path, int label, int pred, std::vector<double> values) {
  ScoreRow r;
  r.id = id;
  r.path = std::move(path);
  r.label = label;
  r.pred = pred;
  r.values = std::move(values);
  return r;
}

std::size_t files_in(const std::string& folder) {
  return std::size_t(std::distance(std::filesystem::directory_iterator(folder), {}));
}

// Writes `text` as a scores file and expects the reader to refuse it with "<file>:<where>".
void expect_rejected(const std::string& text, const std::string& where_and_message) {
  TempDir dir;
  const std::string path = dir.file("scores.csv");
  write_bytes(path, text);
  EXPECT_ERROR_CONTAINS(read_score_table(path), path + where_and_message);
}

const std::string kHeader = "id,path,label,pred,correct,msp\n";

TEST(ScoresTable, ScoreColumns) {
  EXPECT_EQ(score_columns(),
            (std::vector<std::string>{"image_score", "msp", "margin", "neg_entropy", "energy", "max_logit"}));
}

TEST(ScoresTable, FormatDoubleIsShortestRoundTrip) {
  EXPECT_EQ(format_double(0.1), "0.1");
  EXPECT_EQ(format_double(0.5), "0.5");
  EXPECT_EQ(format_double(-3.0), "-3");
  EXPECT_EQ(format_double(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(format_double(1.0 / 3.0), "0.3333333333333333");
  EXPECT_EQ(format_double(2.0 / 3.0), "0.6666666666666666");
  EXPECT_EQ(format_double(1e300), "1e+300");
  EXPECT_EQ(format_double(-1.5e-10), "-1.5e-10");
  EXPECT_EQ(format_double(0.0), "0");
  for (double value : {std::nextafter(1.0, 2.0), 123456.789, -0.7000000000000001, 5e-324,
                       std::numeric_limits<double>::max()}) {
    EXPECT_EQ(std::strtod(format_double(value).c_str(), nullptr), value) << format_double(value);
  }
}

TEST(ScoresTable, CsvFieldQuotesOnlyWhenNeeded) {
  EXPECT_EQ(csv_field("plain/path.png"), "plain/path.png");
  EXPECT_EQ(csv_field("a,b.png"), "\"a,b.png\"");
  EXPECT_EQ(csv_field("say \"hi\".png"), "\"say \"\"hi\"\".png\"");
  EXPECT_EQ(csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(csv_field(""), "");
}

TEST(ScoresTable, WritesTheDocumentedText) {
  TempDir dir;
  const std::string path = dir.file("scores.csv");
  ScoreWriter writer(path, {"msp", "tap:conv 1"});
  writer.write(row(0, "a.png", 1, 1, {0.5, -2}));
  writer.write(row(1, "b,c.png", 2, 0, {0.1, 3}));
  writer.write(row(2, "u.png", -1, 0, {1, 0}));
  writer.commit();
  EXPECT_EQ(read_bytes(path),
            "id,path,label,pred,correct,msp,tap:conv 1\n"
            "0,a.png,1,1,1,0.5,-2\n"
            "1,\"b,c.png\",2,0,0,0.1,3\n"
            "2,u.png,,0,,1,0\n");
  EXPECT_EQ(files_in(dir.path()), 1u);  // no temporary file left behind
}

TEST(ScoresTable, ClassNamesGoBesideTheIds) {
  TempDir dir;
  const std::string path = dir.file("scores.csv");
  ScoreWriter writer(path, {"msp"}, {"cat", "dog, big", "owl"});
  writer.write(row(0, "a.png", 1, 1, {0.5}));
  writer.write(row(1, "b.png", 2, 0, {0.1}));
  writer.write(row(2, "u.png", -1, 2, {1}));
  writer.commit();
  EXPECT_EQ(read_bytes(path),
            "id,path,label,pred,correct,label_name,pred_name,msp\n"
            "0,a.png,1,1,1,\"dog, big\",\"dog, big\",0.5\n"
            "1,b.png,2,0,0,owl,cat,0.1\n"
            "2,u.png,,2,,,owl,1\n");
  const ScoreTable table = read_score_table(path);
  EXPECT_EQ(table.value_columns, (std::vector<std::string>{"msp"}));
  EXPECT_EQ(table.class_names, (std::vector<std::string>{"cat", "dog, big", "owl"}));
  EXPECT_EQ(table.rows[1].values, (std::vector<double>{0.1}));
  // A selection made from it names the pseudo-labels too, and reads back.
  const std::string selection = dir.file("sel.csv");
  write_selection(selection, table, "msp", {2, 0});
  EXPECT_EQ(read_bytes(selection), "id,path,pseudo_label,pseudo_label_name,score\n2,u.png,2,owl,1\n0,a.png,1,\"dog, big\",0.5\n");
  EXPECT_EQ(read_selection(selection).size(), 2u);
  // Files without the columns (imagescore 0.x) still read, without names.
  write_bytes(path, kHeader + "0,a.png,1,1,1,0.5\n");
  EXPECT_TRUE(read_score_table(path).class_names.empty());

  // Names that contradict each other, or the label, are refused with their line.
  expect_rejected("id,path,label,pred,correct,label_name,pred_name,msp\n0,a,1,1,1,dog,dog,0.5\n1,b,1,0,0,cat,cat,0.5\n",
                  ":3: class 1 is named 'cat' here but 'dog' above");
  expect_rejected("id,path,label,pred,correct,label_name,pred_name,msp\n0,a,,1,,dog,dog,0.5\n",
                  ":2: label_name 'dog' does not go with label ''");
  expect_rejected("id,path,label,pred,correct,label_name,pred_name,msp\n0,a,1,1,1,dog,,0.5\n", ":2: class 1 has an empty name");
  write_bytes(selection, "id,path,pseudo_label,pseudo_label_name,score\n0,a,1,dog,0.5\n1,b,1,cat,0.5\n");
  EXPECT_ERROR_CONTAINS(read_selection(selection), "sel.csv:3: class 1 is named 'cat' here but 'dog' above");
  // A writer given names must have one for every class it writes.
  ScoreWriter short_names(dir.file("x.csv"), {"msp"}, {"cat"});
  EXPECT_ERROR_CONTAINS(short_names.write(row(0, "a.png", -1, 1, {0.5})), "x.csv: class 1 of image 0 has no name");
}

TEST(ScoresTable, RoundTripsAwkwardPathsAndValues) {
  TempDir dir;
  const std::string path = dir.file("scores.csv");
  std::vector<std::string> columns = score_columns();
  columns.push_back("tap:features.0");
  const std::vector<ScoreRow> rows = {
      row(0, "plain.png", 3, 3, {-0.25, 0.9, 0.1 + 0.2, -1e-300, 1e300, 1.0 / 3, 7}),
      row(5, "with,comma.png", 1, 2, {0, 0, 0, 0, 0, 0, 0}),
      row(9, "quote\"inside\".png", -1, 0, {1, 2, 3, 4, 5, 6, 7}),
      row(12, "new\nline,\"both\".png", 0, 0, {-5, 5, -5, 5, -5, 5, 2.0 / 3}),
      row(13, "", 4, 1, {1, 1, 1, 1, 1, 1, 1}),
  };
  ScoreWriter writer(path, columns);
  for (const ScoreRow& r : rows) writer.write(r);
  writer.commit();

  ScoreTable table = read_score_table(path);
  EXPECT_EQ(table.path, path);
  EXPECT_EQ(table.value_columns, columns);
  ASSERT_EQ(table.rows.size(), rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(table.rows[i].id, rows[i].id);
    EXPECT_EQ(table.rows[i].path, rows[i].path);
    EXPECT_EQ(table.rows[i].label, rows[i].label);
    EXPECT_EQ(table.rows[i].pred, rows[i].pred);
    EXPECT_EQ(table.rows[i].values, rows[i].values);  // exact: the text round-trips
  }
  EXPECT_FALSE(table.has_labels());
  EXPECT_EQ(table.column("msp"), 1u);
  EXPECT_EQ(table.values("tap:features.0"), (std::vector<double>{7, 0, 7, 2.0 / 3, 1}));
  EXPECT_ERROR_CONTAINS(table.column("nope"),
                        path + ": no column 'nope' (columns: image_score, msp, margin, neg_entropy, energy, "
                               "max_logit, tap:features.0)");
}

TEST(ScoresTable, NoFileWithoutCommit) {
  TempDir dir;
  const std::string path = dir.file("scores.csv");
  {
    ScoreWriter writer(path, {"msp"});
    writer.write(row(0, "a.png", 0, 0, {0.5}));
    EXPECT_EQ(files_in(dir.path()), 1u);  // the temporary file
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(files_in(dir.path()), 0u);
}

TEST(ScoresTable, WriterRefusesBadRows) {
  TempDir dir;
  const std::string path = dir.file("scores.csv");
  ScoreWriter writer(path, {"msp", "energy"});
  EXPECT_ERROR_CONTAINS(writer.write(row(4, "a.png", 0, 0, {0.5})),
                        path + ": row for image 4 has 1 values, expected 2");
  EXPECT_ERROR_CONTAINS(writer.write(row(5, "a.png", 0, 0, {0.5, -std::numeric_limits<double>::infinity()})),
                        path + ": non-finite energy for image 5");
  EXPECT_ERROR_CONTAINS(ScoreWriter(dir.file("missing/scores.csv"), {"msp"}), "missing/scores.csv: cannot write");
}

TEST(ScoresTable, ReadsLabelsCrlfAndNoFinalNewline) {
  TempDir dir;
  const std::string path = dir.file("scores.csv");
  write_bytes(path, "id,path,label,pred,correct,msp\r\n3,\"x,y.png\",1,1,1,0.25\r\n4,z.png,2,0,,1e-3");
  ScoreTable table = read_score_table(path);
  ASSERT_EQ(table.rows.size(), 2u);
  EXPECT_EQ(table.rows[0].path, "x,y.png");
  EXPECT_EQ(table.rows[1].id, 4u);
  EXPECT_EQ(table.rows[1].label, 2);
  EXPECT_EQ(table.rows[1].values, std::vector<double>{0.001});
  EXPECT_TRUE(table.has_labels());
}

TEST(ScoresTable, ReadsAByteOrderMarkAsSpreadsheetsSaveIt) {
  TempDir dir;
  const std::string path = dir.file("scores.csv");
  write_bytes(path, "\xEF\xBB\xBFid,path,label,pred,correct,msp\n3,a.png,999999,999999,1,0.25\n");
  ScoreTable table = read_score_table(path);
  ASSERT_EQ(table.rows.size(), 1u);
  EXPECT_EQ(table.rows[0].id, 3u);
  EXPECT_EQ(table.rows[0].pred, kMaxClasses - 1);
  const std::string selection = dir.file("selection.csv");
  write_bytes(selection, "\xEF\xBB\xBFid,path,pseudo_label,score\n3,a.png,1,0.25\n");
  EXPECT_EQ(read_selection(selection).size(), 1u);
}

TEST(ScoresTable, ReadsAHeaderOnlyFile) {
  TempDir dir;
  const std::string path = dir.file("scores.csv");
  write_bytes(path, kHeader);
  ScoreTable table = read_score_table(path);
  EXPECT_TRUE(table.rows.empty());
  EXPECT_EQ(table.value_columns, std::vector<std::string>{"msp"});
}

TEST(ScoresTable, RejectsBadHeaders) {
  expect_rejected("", ": empty file, expected a header line");
  expect_rejected("id,path,pred,correct,msp\n", ":1: missing column 'label' (a scores file starts with "
                                               "id,path,label,pred,correct)");
  expect_rejected("id,path,label,pred\n", ":1: missing column 'correct'");
  expect_rejected("id,path,label,pred,correct,msp,msp\n", ":1: duplicate column 'msp'");
  expect_rejected("id,path,label,pred,correct,,msp\n", ":1: empty name for column 6");
}

TEST(ScoresTable, RejectsMalformedRowsWithTheirLine) {
  expect_rejected(kHeader + "0,a.png,1,1,1,0.5\n1,b.png,1,1,1\n", ":3: expected 6 fields (as in the header), got 5");
  expect_rejected(kHeader + "x,a.png,1,1,1,0.5\n", ":2: id 'x' is not a non-negative integer");
  expect_rejected(kHeader + "-1,a.png,1,1,1,0.5\n", ":2: id '-1' is not a non-negative integer");
  expect_rejected(kHeader + "0,a.png,1,-2,0,0.5\n", ":2: pred '-2' is not a non-negative integer");
  expect_rejected(kHeader + "0,a.png,1,,0,0.5\n", ":2: pred '' is not a non-negative integer");
  expect_rejected(kHeader + "0,a.png,1.5,1,,0.5\n", ":2: label '1.5' is neither empty nor a non-negative integer");
  expect_rejected(kHeader + "0,a.png,1,1,yes,0.5\n", ":2: correct 'yes' is neither empty, 0 nor 1");
  expect_rejected(kHeader + "0,a.png,1,2,1,0.5\n", ":2: correct is 1 but label is 1 and pred is 2");
  expect_rejected(kHeader + "0,a.png,2,2,0,0.5\n", ":2: correct is 0 but label is 2 and pred is 2");
  expect_rejected(kHeader + "0,a.png,,2,1,0.5\n", ":2: correct is 1 but the label is empty");
  expect_rejected(kHeader + "0,a.png,1,1,1,abc\n", ":2: msp 'abc' is not a finite number");
  expect_rejected(kHeader + "0,a.png,1,1,1,nan\n", ":2: msp 'nan' is not a finite number");
  expect_rejected(kHeader + "0,a.png,1,1,1,-inf\n", ":2: msp '-inf' is not a finite number");
  expect_rejected(kHeader + "0,a.png,1,1,1,1e999\n", ":2: msp '1e999' is not a finite number");
  expect_rejected(kHeader + "0,a.png,1,1,1, 0.5\n", ":2: msp ' 0.5' is not a finite number");
  expect_rejected(kHeader + "0,a.png,1,1,1,0.5\n\n", ":3: expected 6 fields (as in the header), got 1");
  // One edited cell must not size per-class tables in gigabytes downstream.
  expect_rejected(kHeader + "0,a.png,1,10000000,0,0.5\n", ":2: pred 10000000 is above the limit of 999999");
  expect_rejected(kHeader + "0,a.png,1000000,1,0,0.5\n", ":2: label 1000000 is above the limit of 999999");
}

TEST(ScoresTable, RejectsBadQuotingWithTheRightLine) {
  // Row 2 spans lines 2-3, so the bad row after it starts on line 4.
  expect_rejected(kHeader + "0,\"two\nlines.png\",1,1,1,0.5\n1,b.png,1,1,1,oops\n", ":4: msp 'oops'");
  expect_rejected(kHeader + "0,\"open.png,1,1,1,0.5\n", ":2: unterminated quoted field");
  expect_rejected(kHeader + "0,a\"b.png,1,1,1,0.5\n", ":2: quote inside an unquoted field");
  expect_rejected(kHeader + "0,\"a\"b.png,1,1,1,0.5\n", ":2: unexpected text after a closing quote");
}

}  // namespace
}  // namespace imagescore
