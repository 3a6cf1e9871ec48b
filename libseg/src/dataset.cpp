#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/output.h>
#include <seg/torch_archive.h>

#include <nlohmann/json.hpp>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <set>

namespace seg {
namespace fs = std::filesystem;
using nlohmann::json;

// ---- ClassTable ---------------------------------------------------------------------------

int ClassTable::max_value() const {
  int m = 0;
  for (const auto& e : entries) m = std::max(m, e.second);
  return m;
}

std::string ClassTable::name_of(int value) const {
  for (const auto& e : entries)
    if (e.second == value) return e.first;
  return "label_" + std::to_string(value);
}

bool ClassTable::contains(int value) const {
  return std::any_of(entries.begin(), entries.end(), [&](const auto& e) { return e.second == value; });
}

ClassTable ClassTable::numbered(int num_classes) {
  ClassTable table;
  for (int v = 0; v < num_classes; ++v)
    table.entries.emplace_back(v == 0 ? "background" : "label_" + std::to_string(v), v);
  return table;
}

// ---- DatasetSpec --------------------------------------------------------------------------

namespace {
std::string replace_case(const std::string& pattern, const std::string& c) {
  std::string out = pattern;
  const std::string key = "{case}";
  for (size_t pos = out.find(key); pos != std::string::npos; pos = out.find(key, pos + c.size()))
    out.replace(pos, key.size(), c);
  return out;
}

// The keys dataset.json defines (docs/formats.md).
const std::vector<std::string> kKnownKeys = {"name", "description", "size", "images", "labels", "classes", "split", "cases"};

std::string lower_case(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// Edits (insertions, deletions, substitutions, swaps of neighbours) that turn a into b.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// "unknown key \"splits\" (did you mean \"split\"?)": the nearest known key when it is a
// plausible misspelling (at most two edits, fewer than half the key's letters), else the list.
std::string unknown_key_warning(const std::string& key) {
  const std::string wanted = lower_case(key);
  std::string nearest;
  size_t best = std::string::npos;
  for (const auto& known : kKnownKeys)
    if (const size_t d = edit_distance(wanted, known); d < best) best = d, nearest = known;
  if (best <= 2 && 2 * best < wanted.size()) return "unknown key \"" + key + "\" (did you mean \"" + nearest + "\"?)";
  std::string list;
  for (const auto& known : kKnownKeys) list += (list.empty() ? "" : ", ") + known;
  return "unknown key \"" + key + "\" (dataset.json knows " + list + ")";
}
}  // namespace

DatasetSpec DatasetSpec::read(const fs::path& path) {
  const std::string text = read_regular_file(path);
  // ordered_json: the splits keep the file's order, so the cases do too (train before test).
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(path.string(), "malformed JSON: " + json_reason(e));
  }
  DatasetSpec spec;
  // A misspelt key is the likely cause of a missing one, so every error names them too.
  auto fail = [&](const std::string& why) {
    std::string text = why;
    for (const auto& w : spec.warnings) text += "; " + w;
    throw Error(path.string(), text);
  };
  if (!j.is_object()) fail("expected a JSON object at the top level");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find(kKnownKeys.begin(), kKnownKeys.end(), it.key()) == kKnownKeys.end())
      spec.warnings.push_back(unknown_key_warning(it.key()));
  try {
    spec.name = j.value("name", path.parent_path().filename().string());
    spec.description = j.value("description", "");
    if (j.contains("size")) {
      if (!j["size"].is_array() || j["size"].size() != 2) fail("\"size\" must be [height, width]");
      for (const auto& side : j["size"]) {
        if (!side.is_number_integer()) fail("\"size\" must be [height, width] in whole pixels");
        spec.size.push_back(side.get<int64_t>());
      }
      if (spec.size[0] <= 0 || spec.size[1] <= 0) fail("\"size\" must be positive");
    }
    if (!j.contains("images") || !j["images"].is_string()) fail("missing \"images\" pattern (e.g. \"images/{case}.png\")");
    spec.images_pattern = j["images"].get<std::string>();
    if (spec.images_pattern.find("{case}") == std::string::npos) fail("\"images\" pattern has no {case}");
    if (j.contains("labels") && !j["labels"].is_null()) {
      if (!j["labels"].is_string()) fail("\"labels\" must be a pattern string");
      spec.labels_pattern = j["labels"].get<std::string>();
      if (spec.labels_pattern.find("{case}") == std::string::npos) fail("\"labels\" pattern has no {case}");
    }
    if (!j.contains("classes") || !j["classes"].is_object() || j["classes"].empty())
      fail("missing \"classes\" object ({\"background\": 0, ...})");
    std::set<int> values;
    for (auto it = j["classes"].begin(); it != j["classes"].end(); ++it) {
      if (!it.value().is_number_integer()) fail("class \"" + it.key() + "\" must have an integer value");
      const int64_t wide = it.value().get<int64_t>();  // get<int> would wrap 2^32 + 3 to 3
      if (!is_label_value(wide)) fail("class \"" + it.key() + "\" has value " + std::to_string(wide) + " outside 0..255");
      const int v = static_cast<int>(wide);
      if (!values.insert(v).second) fail("two classes share the value " + std::to_string(v));
      spec.classes.entries.emplace_back(it.key(), v);
    }
    std::sort(spec.classes.entries.begin(), spec.classes.entries.end(),
              [](const auto& a, const auto& b) { return a.second < b.second; });
    std::set<std::string> seen;
    if (j.contains("split")) {
      if (!j["split"].is_object()) fail("\"split\" must map split names to case lists");
      for (auto it = j["split"].begin(); it != j["split"].end(); ++it) {
        if (!it.value().is_array()) fail("split \"" + it.key() + "\" must be a list of case IDs");
        auto cases = it.value().get<std::vector<std::string>>();
        std::set<std::string> in_split;
        for (const auto& c : cases) {
          check_name(c, "case ID", path.string() + " (split \"" + it.key() + "\")");
          if (!in_split.insert(c).second) fail("case " + c + " is listed twice in split \"" + it.key() + "\"");
          if (seen.insert(c).second) spec.cases.push_back(c);
        }
        spec.splits[it.key()] = std::move(cases);
      }
    }
    if (j.contains("cases")) {
      if (!j["cases"].is_array()) fail("\"cases\" must be a list of case IDs");
      for (const auto& c : j["cases"].get<std::vector<std::string>>()) {
        check_name(c, "case ID", path.string() + " (\"cases\")");
        if (seen.insert(c).second) spec.cases.push_back(c);
      }
    }
    if (spec.cases.empty()) fail("lists no cases (\"split\" or \"cases\")");
  } catch (const json::exception& e) {
    fail("unexpected value: " + json_reason(e));
  }
  return spec;
}

std::string DatasetSpec::to_json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["name"] = name;
  if (!description.empty()) j["description"] = description;
  if (!size.empty()) j["size"] = size;
  j["images"] = images_pattern;
  if (!labels_pattern.empty()) j["labels"] = labels_pattern;
  nlohmann::ordered_json classes_json = nlohmann::ordered_json::object();
  for (const auto& [n, v] : classes.entries) classes_json[n] = v;
  j["classes"] = classes_json;
  // Splits in the order of their first case, so that reading the file gives the cases back
  // in this order.
  std::map<std::string, size_t> position;
  for (size_t i = 0; i < cases.size(); ++i) position.emplace(cases[i], i);
  auto first_position = [&](const std::vector<std::string>& cs) {
    size_t first = cases.size();
    for (const auto& c : cs)
      if (auto it = position.find(c); it != position.end()) first = std::min(first, it->second);
    return first;
  };
  std::vector<std::pair<size_t, std::string>> split_order;
  for (const auto& [n, cs] : splits) split_order.emplace_back(first_position(cs), n);
  std::stable_sort(split_order.begin(), split_order.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  nlohmann::ordered_json split_json = nlohmann::ordered_json::object();
  for (const auto& [first, n] : split_order) split_json[n] = splits.at(n);
  j["split"] = split_json;
  std::set<std::string> in_split;
  for (const auto& [n, cs] : splits) in_split.insert(cs.begin(), cs.end());
  std::vector<std::string> extra;
  for (const auto& c : cases)
    if (!in_split.count(c)) extra.push_back(c);
  if (!extra.empty()) j["cases"] = extra;
  return j.dump(1) + "\n";
}

fs::path DatasetSpec::image_path(const fs::path& root, const std::string& c) const {
  return root / replace_case(images_pattern, c);
}
fs::path DatasetSpec::label_path(const fs::path& root, const std::string& c) const {
  return root / replace_case(labels_pattern, c);
}

// ---- Dataset ------------------------------------------------------------------------------

const std::vector<std::string>& split_cases(const std::map<std::string, std::vector<std::string>>& splits,
                                            const std::string& split, const std::string& source) {
  const auto it = splits.find(split);
  if (it != splits.end()) return it->second;
  std::string known;
  for (const auto& [name, cases] : splits) known += (known.empty() ? "" : ", ") + name;
  throw UnknownSplit(source, "has no split \"" + split + "\" (it has: " + (known.empty() ? "none" : known) + "); name one of those");
}

std::vector<int64_t> Dataset::split_indices(const std::string& split) const {
  const auto& members = split_cases(splits, split, source);
  std::map<std::string, int64_t> row;
  for (int64_t i = 0; i < size(); ++i) row[cases[static_cast<size_t>(i)]] = i;
  std::vector<int64_t> rows;
  for (const auto& c : members) {
    auto r = row.find(c);
    if (r == row.end()) throw Error(source, "split \"" + split + "\" names case " + c + ", which the data set lacks");
    rows.push_back(r->second);
  }
  return rows;
}

Dataset Dataset::subset(const std::string& split) const {
  const auto rows = split_indices(split);
  auto index = torch::tensor(rows, torch::kLong);
  Dataset out;
  out.name = name;
  out.description = description;
  out.source = source;
  out.classes = classes;
  out.images = images.index_select(0, index);
  if (labels.defined()) out.labels = labels.index_select(0, index);
  for (auto r : rows) {
    out.cases.push_back(cases[static_cast<size_t>(r)]);
    if (!geometry.empty()) out.geometry.push_back(geometry[static_cast<size_t>(r)]);
  }
  out.splits[split] = out.cases;
  out.warnings = warnings;
  out.left_out = left_out;
  return out;
}

void Dataset::validate() const {
  if (!images.defined() || images.dim() != 3)
    throw Error(source, "images must be an N x H x W tensor");
  if (images.size(0) != size())
    throw Error(source, std::to_string(images.size(0)) + " images but " + std::to_string(size()) + " case IDs");
  const auto type = images.scalar_type();
  if (type != torch::kByte && type != torch::kShort && type != torch::kInt && type != torch::kFloat)
    throw Error(source, std::string("images are ") + c10::toString(type) +
                            "; a data set holds uint8, int16, int32 (uint16 widened) or float32 images");
  if (!geometry.empty() && static_cast<int64_t>(geometry.size()) != size())
    throw Error(source, std::to_string(geometry.size()) + " geometries but " + std::to_string(size()) + " cases");
  if (images.is_floating_point() && !images.isfinite().all().item<bool>())
    throw Error(source, "images hold NaN or Inf pixels; replace them with finite values first");
  if (labels.defined()) {
    if (labels.sizes() != images.sizes())
      throw Error(source, "label maps and images differ in shape");
    if (labels.scalar_type() != torch::kByte) throw Error(source, "label maps must be uint8");
    auto present = std::get<0>(at::_unique(labels.flatten()));
    for (int64_t i = 0; i < present.numel(); ++i) {
      int v = present[i].item<int>();
      if (!classes.contains(v))
        throw Error(source, "label value " + std::to_string(v) + " is not in the class table");
    }
  }
  for (const auto& c : cases) check_name(c, "case ID", source);
  for (const auto& [split, split_cases] : splits)
    for (const auto& c : split_cases) check_name(c, "case ID", source + " (split \"" + split + "\")");
  std::set<std::string> seen;
  for (const auto& c : cases)
    if (!seen.insert(c).second) throw Error(source, "case ID \"" + c + "\" is given twice; each case needs an ID of its own");
}

std::string stored_pixel_type(const at::Tensor& images) {
  switch (images.scalar_type()) {
    case torch::kByte: return "uint8";
    case torch::kShort: return "int16";
    case torch::kInt: {
      const bool fits_uint16 = images.numel() == 0 || (images.min().item<int64_t>() >= 0 && images.max().item<int64_t>() <= 65535);
      return fits_uint16 ? "uint16" : "int32";
    }
    default: return "float32";
  }
}

std::string pixel_type_mix_warning(const std::map<std::string, int64_t>& cases_per_type) {
  if (cases_per_type.size() < 2) return "";
  std::string list;
  for (const auto& [type, n] : cases_per_type)
    list += (list.empty() ? "" : ", ") + type + " (" + std::to_string(n) + (n == 1 ? " case)" : " cases)");
  return "pixel types differ: " + list +
         ": a model that normalises by data-set statistics sees them on different scales; train with per-image "
         "normalisation (--normalize image)";
}

// ---- Tensor pack --------------------------------------------------------------------------

namespace {
constexpr const char* kPackFormat = "segsuite-pack-1";

c10::List<std::string> to_list(const std::vector<std::string>& v) {
  c10::List<std::string> list;
  for (const auto& s : v) list.push_back(s);
  return list;
}

// Geometry as N x 9 float64 rows: has_spacing, spacing (x, y), origin (x, y), direction.
constexpr int64_t kGeometryColumns = 9;

at::Tensor geometry_rows(const std::vector<Geometry>& geometry) {
  std::vector<double> values;
  for (const auto& g : geometry) {
    values.push_back(g.has_spacing ? 1.0 : 0.0);
    values.insert(values.end(), g.spacing.begin(), g.spacing.end());
    values.insert(values.end(), g.origin.begin(), g.origin.end());
    values.insert(values.end(), g.direction.begin(), g.direction.end());
  }
  return torch::tensor(values, torch::kDouble).view({static_cast<int64_t>(geometry.size()), kGeometryColumns});
}

std::vector<Geometry> geometry_of_rows(const at::Tensor& rows, int64_t cases, const fs::path& path) {
  if (rows.dim() != 2 || rows.size(0) != cases || rows.size(1) != kGeometryColumns || !rows.is_floating_point())
    throw Error(path.string(), "\"geometry\" must be an N x 9 float tensor, one row per case");
  const auto values = rows.to(torch::kDouble).contiguous();
  if (!values.isfinite().all().item<bool>()) throw Error(path.string(), "\"geometry\" holds NaN or Inf");
  const double* v = values.data_ptr<double>();
  std::vector<Geometry> geometry(static_cast<size_t>(cases));
  for (auto& g : geometry) {
    g.has_spacing = v[0] != 0;
    g.spacing = {v[1], v[2]};
    g.origin = {v[3], v[4]};
    g.direction = {v[5], v[6], v[7], v[8]};
    if (g.spacing[0] <= 0 || g.spacing[1] <= 0) throw Error(path.string(), "\"geometry\" has a spacing that is not positive");
    v += kGeometryColumns;
  }
  return geometry;
}

std::vector<std::string> strings_of(const c10::IValue& value, const std::string& key, const fs::path& path) {
  if (!value.isList()) throw Error(path.string(), "tensor pack entry \"" + key + "\" is not a list");
  std::vector<std::string> out;
  for (const auto& item : value.toListRef()) {
    if (!item.isString()) throw Error(path.string(), "tensor pack entry \"" + key + "\" holds a non-string");
    out.push_back(item.toStringRef());
  }
  return out;
}
}  // namespace

bool is_tensor_pack(const fs::path& path) {
  const auto ext = path.extension().string();
  return ext == ".pth" || ext == ".pt";
}

void save_tensor_pack(const Dataset& data, const fs::path& path) {
  data.validate();
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("format", std::string(kPackFormat));
  dict.insert("name", data.name);
  dict.insert("images", data.images.contiguous());
  if (data.labels.defined()) dict.insert("labels", data.labels.contiguous());
  dict.insert("cases", to_list(data.cases));
  std::vector<std::string> names;
  std::vector<int64_t> values;
  for (const auto& [n, v] : data.classes.entries) {
    names.push_back(n);
    values.push_back(v);
  }
  dict.insert("class_names", to_list(names));
  dict.insert("class_values", c10::List<int64_t>(values));
  std::vector<std::string> split_names;
  for (const auto& [n, cs] : data.splits) {
    split_names.push_back(n);
    dict.insert("split_" + n, to_list(cs));
  }
  dict.insert("split_names", to_list(split_names));
  if (!data.description.empty()) dict.insert("description", data.description);
  if (!data.geometry.empty()) dict.insert("geometry", geometry_rows(data.geometry));
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  write_file_atomically(path, std::string_view(bytes.data(), bytes.size()));
}

Dataset load_tensor_pack(const fs::path& path) {
  const std::string bytes = read_regular_file(path);
  if (const auto problem = torch_archive_problem(bytes); !problem.empty())
    throw Error(path.string(), "not a readable tensor pack: " + problem);
  c10::IValue value;
  try {
    value = load_pickle_archive(bytes);
  } catch (const std::exception& e) {
    std::string why = e.what();
    throw Error(path.string(), "not a readable tensor pack (" + why.substr(0, why.find('\n')) + ")");
  }
  if (!value.isGenericDict()) throw Error(path.string(), "not a tensor pack: expected a dict");
  auto dict = value.toGenericDict();
  auto get = [&](const std::string& key) -> c10::IValue {
    auto it = dict.find(key);
    if (it == dict.end()) throw Error(path.string(), "tensor pack lacks \"" + key + "\"");
    return it->value();
  };
  if (!dict.contains("format") || !get("format").isString() || get("format").toStringRef() != kPackFormat)
    throw Error(path.string(), std::string("not a tensor pack of format ") + kPackFormat +
                                   " (convert notebook files with seg-convert --notebook)");
  Dataset data;
  data.source = path.string();
  data.name = get("name").isString() ? get("name").toStringRef() : path.stem().string();
  if (!get("images").isTensor()) throw Error(path.string(), "\"images\" is not a tensor");
  data.images = get("images").toTensor();
  check_tensor_in_storage(data.images, path.string(), "\"images\"");
  if (dict.contains("labels")) {
    if (!get("labels").isTensor()) throw Error(path.string(), "\"labels\" is not a tensor");
    data.labels = get("labels").toTensor();
    check_tensor_in_storage(data.labels, path.string(), "\"labels\"");
  }
  data.cases = strings_of(get("cases"), "cases", path);
  auto names = strings_of(get("class_names"), "class_names", path);
  auto values_iv = get("class_values");
  if (!values_iv.isIntList() && !values_iv.isList()) throw Error(path.string(), "\"class_values\" is not a list");
  std::vector<int64_t> values;
  for (const auto& v : values_iv.toListRef()) values.push_back(v.toInt());
  if (names.size() != values.size()) throw Error(path.string(), "class_names and class_values differ in length");
  for (size_t i = 0; i < names.size(); ++i) data.classes.entries.emplace_back(names[i], static_cast<int>(values[i]));
  for (const auto& n : strings_of(get("split_names"), "split_names", path))
    data.splits[n] = strings_of(get("split_" + n), "split_" + n, path);
  if (dict.contains("description")) {
    if (!get("description").isString()) throw Error(path.string(), "\"description\" is not a string");
    data.description = get("description").toStringRef();
  }
  if (dict.contains("geometry")) {
    if (!get("geometry").isTensor()) throw Error(path.string(), "\"geometry\" is not a tensor");
    const at::Tensor rows = get("geometry").toTensor();
    check_tensor_in_storage(rows, path.string(), "\"geometry\"");
    data.geometry = geometry_of_rows(rows, data.size(), path);
  }
  data.validate();
  return data;
}

}  // namespace seg
