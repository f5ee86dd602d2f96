// File-per-image sources: image folders and CSV manifests. Opening lists the files and
// reads the first image's header for the shape; pixels are decoded on demand in read().
#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>

#include "data_detail.hpp"
#include "imagescore/data/image_codec.hpp"
#include "imagescore/core/error.hpp"
#include "imagescore/core/io.hpp"

namespace imagescore::detail {
namespace {
namespace fs = std::filesystem;

// Caps manifest labels so that a typo cannot create millions of class names.
constexpr int kMaxManifestLabel = 65535;

class FileImageSource : public ImageSource {
 public:
  // `labels` is empty for an unlabelled pool. The first image's header sets the channels
  // and, without a fit, the size, which every other image must have (checked when it is
  // read); with a fit, every image is fitted to it.
  FileImageSource(std::string spec, std::vector<std::string> class_names, std::vector<std::string> paths,
                  std::vector<int> labels, std::optional<InputFit> fit)
      : spec_(std::move(spec)),
        class_names_(std::move(class_names)),
        paths_(std::move(paths)),
        labels_(std::move(labels)),
        fit_(fit),
        shape_(read_image_header(read_file(paths_.front()), paths_.front())) {
    if (fit_) shape_ = {shape_.channels, fit_->height, fit_->width};
  }

  std::size_t size() const override { return paths_.size(); }
  ImageShape shape() const override { return shape_; }
  const std::vector<std::string>& class_names() const override { return class_names_; }
  int label(std::size_t i) const override { return labels_.empty() ? kNoLabel : labels_.at(i); }
  std::string path(std::size_t i) const override { return paths_.at(i); }
  void read(std::size_t i, std::uint8_t* out) const override {
    const std::string& file = paths_.at(i);
    if (fit_)
      read_fitted(file, shape_.channels, *fit_, out);
    else
      decode_image(read_file(file), file, shape_, out);
  }
  std::string spec() const override { return spec_; }

 private:
  std::string spec_;
  std::vector<std::string> class_names_;
  std::vector<std::string> paths_;
  std::vector<int> labels_;
  std::optional<InputFit> fit_;
  ImageShape shape_;
};

bool has_image_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

struct FolderListing {
  std::vector<fs::path> folders;     // sorted by name (byte order)
  std::vector<std::string> images;   // sorted by name (byte order)
};

// Lists a folder's visible sub-folders and image files; other files are ignored.
FolderListing list_folder(const fs::path& dir) {
  FolderListing listing;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& entry = it->path();
    if (entry.filename().string().front() == '.') continue;
    // Errors about one entry (a looping link) name that entry, not the listing.
    std::error_code entry_ec;
    if (it->is_directory(entry_ec)) {
      listing.folders.push_back(entry);
    } else if (has_image_extension(entry)) {
      if (it->is_regular_file(entry_ec))
        listing.images.push_back(entry.string());
      else if (it->is_symlink(entry_ec))  // skipped silently before: a class lost images unseen
        fail(entry.string(), "broken or looping symbolic link");
    }
  }
  if (ec) fail(dir.string(), "cannot list folder: " + ec.message());
  std::sort(listing.folders.begin(), listing.folders.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename().string() < b.filename().string(); });
  std::sort(listing.images.begin(), listing.images.end(), [](const std::string& a, const std::string& b) {
    return fs::path(a).filename().string() < fs::path(b).filename().string();
  });
  return listing;
}

std::string trim(const std::string& text) {
  const char* space = " \t\r";
  std::size_t begin = text.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(space) + 1 - begin);
}

bool parse_int(const std::string& text, int& value) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  return ec == std::errc() && ptr == end;
}

}  // namespace

std::unique_ptr<ImageSource> open_image_folder(const std::string& dir, SplitName split, const std::string& spec,
                                               const std::optional<InputFit>& fit) {
  std::error_code ec;
  fs::path root(dir);
  if (!fs::is_directory(root, ec)) fail(dir, "no such folder");
  if (fs::is_directory(root / "train", ec) || fs::is_directory(root / "test", ec)) {
    const std::string split_folder = split == SplitName::Train ? "train" : "test";
    root /= split_folder;
    if (!fs::is_directory(root, ec)) fail(dir, "has no '" + split_folder + "' folder");
  }
  FolderListing listing = list_folder(root);
  if (listing.folders.empty()) {
    if (listing.images.empty()) fail(root.string(), "contains no class folders and no *.png, *.jpg or *.jpeg images");
    return std::make_unique<FileImageSource>(spec, std::vector<std::string>{}, std::move(listing.images),
                                             std::vector<int>{}, fit);
  }
  if (!listing.images.empty())
    fail(root.string(), "has both class folders and images directly inside (" + listing.images.front() +
                            "); expected one or the other");
  std::vector<std::string> class_names, paths;
  std::vector<int> labels;
  for (const fs::path& folder : listing.folders) {
    const std::string name = folder.filename().string();
    std::vector<std::string> images = list_folder(folder).images;
    if (images.empty()) fail(root.string(), "class folder '" + name + "' has no images");
    labels.insert(labels.end(), images.size(), int(class_names.size()));
    paths.insert(paths.end(), images.begin(), images.end());
    class_names.push_back(name);
  }
  return std::make_unique<FileImageSource>(spec, std::move(class_names), std::move(paths), std::move(labels), fit);
}

std::unique_ptr<ImageSource> open_csv_manifest(const std::string& file, const std::string& spec,
                                               const std::optional<InputFit>& fit) {
  std::string text = read_file(file);
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);  // UTF-8 byte-order mark
  const fs::path base = fs::path(file).parent_path();
  std::vector<std::string> paths;
  std::vector<int> labels;
  std::size_t first_entry_line = 0;  // decides whether the manifest is labelled
  bool labelled = false;
  int max_label = -1;
  bool first_line = true;
  std::size_t start = 0;
  for (std::size_t line_number = 1; start < text.size(); ++line_number) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = trim(text.substr(start, end - start));
    start = end + 1;
    if (line.empty()) continue;
    const std::string where = file + ":" + std::to_string(line_number);

    std::vector<std::string> fields;
    for (std::size_t from = 0;;) {
      std::size_t comma = line.find(',', from);
      fields.push_back(trim(line.substr(from, comma == std::string::npos ? std::string::npos : comma - from)));
      if (comma == std::string::npos) break;
      from = comma + 1;
    }
    if (fields.size() > 2)
      fail(where, "expected 'path' or 'path,label', found " + std::to_string(fields.size()) + " fields");
    int label = kNoLabel;
    const bool has_label = fields.size() == 2;
    const bool label_is_int = has_label && parse_int(fields[1], label);
    const bool is_header = first_line && fields[0] == "path" && !label_is_int;
    first_line = false;
    if (is_header) continue;
    if (fields[0].empty()) fail(where, "empty image path");
    // The system would open the part before a NUL, while the scores file records it all.
    if (fields[0].find('\0') != std::string::npos) fail(where, "image path contains a NUL byte");
    if (has_label && !label_is_int) fail(where, "label '" + fields[1] + "' is not an integer");
    if (has_label && (label < 0 || label > kMaxManifestLabel))
      fail(where, "label " + fields[1] + " is out of range (0 to " + std::to_string(kMaxManifestLabel) + ")");
    if (first_entry_line == 0) {
      first_entry_line = line_number;
      labelled = has_label;
    } else if (has_label != labelled) {
      fail(where, std::string(has_label ? "has a label but line " : "has no label but line ") +
                      std::to_string(first_entry_line) + (labelled ? " has one" : " has none") +
                      " (either every line has a label or none)");
    }
    fs::path image(fields[0]);
    if (image.is_relative()) image = base / image;
    std::error_code ec;
    if (!fs::is_regular_file(image, ec)) fail(where, "image " + image.string() + " not found");
    paths.push_back(image.string());
    if (has_label) {
      labels.push_back(label);
      max_label = std::max(max_label, label);
    }
  }
  if (paths.empty()) fail(file, "lists no images");
  return std::make_unique<FileImageSource>(spec, labelled ? numbered_class_names(max_label + 1) : std::vector<std::string>{},
                                           std::move(paths), std::move(labels), fit);
}

}  // namespace imagescore::detail
