#include "support_data.h"

#include <seg/error.h>

#if SEG_WITH_IMAGE_IO
#include <seg/io/dataset_io.h>
#include <seg/io/image_header.h>
#endif

namespace seg::tools {

Dataset load_data(const std::string& path, const DataRequest& request) {
#if SEG_WITH_IMAGE_IO
  seg::io::LoadOptions options;
  options.size = request.size;
  options.require_labels = request.require_labels;
  options.skip_missing = request.skip_missing;
  return seg::io::load_dataset(path, options);
#else
  if (!is_tensor_pack(path))
    throw Error(path, "this build has no image IO (SEG_WITH_IMAGE_IO=OFF): give a tensor pack (.pth) made by seg-convert");
  if (request.size) throw UsageError("--size needs the image IO build; resample when making the tensor pack");
  return load_tensor_pack(path);
#endif
}

void print_data_warnings(const Dataset& data, const std::string& tool, std::ostream& err) {
  for (const auto& warning : data.warnings) err << "seg-" << tool << ": warning: " << data.source << ": " << warning << "\n";
}

std::string left_out_text(const Dataset& data) {
  const size_t n = data.left_out.size();
  if (n == 0) return "";
  constexpr size_t kNamed = 5;
  std::string names;
  for (size_t i = 0; i < n && i < kNamed; ++i) names += (i ? ", " : "") + data.left_out[i];
  if (n > kNamed) names += " and " + std::to_string(n - kNamed) + " more";
  return std::to_string(n) + (n == 1 ? " case" : " cases") + " left out for missing files (" + names + ")";
}

std::pair<int64_t, int64_t> parse_size(const std::string& text) {
  std::pair<int64_t, int64_t> size{0, 0};
  try {
    size_t used = 0;
    const auto x = text.find('x');
    if (x == std::string::npos) {
      const int64_t n = std::stoll(text, &used);
      if (used == text.size() && n > 0) size = {n, n};
    } else {
      const int64_t h = std::stoll(text.substr(0, x), &used);
      size_t used_w = 0;
      const int64_t w = std::stoll(text.substr(x + 1), &used_w);
      if (used == x && used_w == text.size() - x - 1 && h > 0 && w > 0) size = {h, w};
    }
  } catch (const std::exception&) {
  }
  if (size.first == 0) throw UsageError("--size " + text + ": expected N or HxW with positive integers (e.g. 256 or 512x384)");
#if SEG_WITH_IMAGE_IO
  const int64_t cap = io::default_max_pixels();
  if (size.first > cap / size.second)
    throw UsageError("--size " + text + ": more pixels than --max-pixels allows (" + std::to_string(cap) +
                     "); give a smaller size, or raise --max-pixels");
#endif
  return size;
}

void add_data_set_input(Inputs& inputs, const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty()) return;
  const fs::path given(path);
  inputs.add(given);
  const fs::path json = given.filename() == "dataset.json" ? given : given / "dataset.json";
  if (!fs::is_regular_file(json)) return;  // not a data set folder: a file, a folder of films, a tensor pack
  const fs::path root = json.has_parent_path() ? json.parent_path() : fs::path(".");
  inputs.add(root);
  inputs.add(json);
  try {
    const auto spec = DatasetSpec::read(json);
    for (const auto& c : spec.cases) {
      inputs.add(spec.image_path(root, c));
      if (!spec.labels_pattern.empty()) inputs.add(spec.label_path(root, c));
    }
  } catch (const Error&) {
    // An unreadable dataset.json is the reader's to report, with its reason.
  }
}

}  // namespace seg::tools
