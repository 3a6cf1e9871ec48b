#include <seg/checksum.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/torch_archive.h>
#include <seg/model_file.h>
#include <seg/postprocess.h>
#include <seg/quality.h>

#include <nlohmann/json.hpp>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <fstream>
#include <cmath>

namespace seg {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr const char* kModelFormat = "segsuite-model-1";

c10::impl::GenericDict state_dict_of(const torch::nn::Module& net, WeightPrecision precision, const fs::path& path) {
  const auto dtype = precision == WeightPrecision::float16 ? torch::kHalf : torch::kFloat;
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& item : net.named_parameters(true)) {
    auto stored = item.value().detach().to(torch::kCPU, dtype).contiguous();
    if (dtype == torch::kHalf && !torch::isfinite(stored).all().item<bool>() &&
        torch::isfinite(item.value()).all().item<bool>())
      throw Error(path.string(), "weights \"" + item.key() + "\" exceed the float16 range; keep float32");
    dict.insert(item.key(), stored);
  }
  for (const auto& item : net.named_buffers(true))
    dict.insert(item.key(), item.value().detach().to(torch::kCPU).contiguous());
  return dict;
}

// Unpickles `bytes` of the file `path` once the archive check (seg/torch_archive.h) has passed.
c10::IValue unpickle(const std::string& bytes, const fs::path& path) {
  if (const auto problem = torch_archive_problem(bytes); !problem.empty()) {
    if (bytes.compare(0, 2, "PK") != 0) throw Error(path.string(), "not a model file: " + problem);
    throw Error(path.string(), "model file is damaged: " + problem + "; download or copy it again");
  }
  try {
    return load_pickle_archive(bytes);
  } catch (const std::exception& e) {
    std::string why = e.what();
    throw Error(path.string(), "not a readable model file (" + why.substr(0, why.find('\n')) + ")");
  }
}

c10::IValue read_pickle(const fs::path& path) { return unpickle(read_regular_file(path), path); }

// Python's name of a dtype without "torch." ("float32", "float16", ...), as weights_sha256 hashes it.
std::string dtype_name(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "float32";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kDouble: return "float64";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(type);
  }
}

void hash_field(Sha256& sha, const void* data, uint64_t size) {
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(size >> (8 * i));
  sha.update(length, sizeof length).update(data, static_cast<size_t>(size));
}

// The SHA-256 of a state_dict as docs/formats.md defines it: for each tensor, in byte order of
// the names, its name, dtype, shape and bytes (row-major, as stored), each field preceded by its
// length (64-bit little-endian), so that no two state_dicts feed the same bytes.
std::string weights_sha256(const c10::impl::GenericDict& state, const fs::path& path) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : state) {
    if (!item.key().isString() || !item.value().isTensor())
      throw Error(path.string(), "state_dict holds an entry that is not a named tensor");
    const std::string name = item.key().toStringRef();
    const at::Tensor tensor = item.value().toTensor();
    check_tensor_in_storage(tensor, path.string(), "weights \"" + name + "\"");
    tensors.emplace_back(name, tensor);
  }
  std::sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  Sha256 sha;
  for (const auto& [name, tensor] : tensors) {
    const auto bytes = tensor.detach().to(torch::kCPU).contiguous();
    const std::string dtype = dtype_name(bytes.scalar_type());
    hash_field(sha, name.data(), name.size());
    hash_field(sha, dtype.data(), dtype.size());
    std::vector<uint8_t> shape;
    for (const int64_t extent : bytes.sizes())
      for (int i = 0; i < 8; ++i) shape.push_back(static_cast<uint8_t>(static_cast<uint64_t>(extent) >> (8 * i)));
    hash_field(sha, shape.data(), shape.size());
    hash_field(sha, bytes.data_ptr(), bytes.nbytes());
  }
  return sha.hex_digest();
}

void copy_state(torch::nn::Module& net, const c10::impl::GenericDict& dict, const fs::path& path) {
  torch::NoGradGuard no_grad;
  size_t matched = 0;
  auto assign = [&](const std::string& name, at::Tensor& target) {
    auto it = dict.find(name);
    if (it == dict.end()) throw Error(path.string(), "has no weights for \"" + name + "\" (another network?)");
    if (!it->value().isTensor()) throw Error(path.string(), "entry \"" + name + "\" is not a tensor");
    const auto source = it->value().toTensor();
    check_tensor_in_storage(source, path.string(), "weights \"" + name + "\"");
    if (source.is_floating_point() && !torch::isfinite(source).all().item<bool>())
      throw Error(path.string(), "weights \"" + name + "\" hold NaN or infinite values (from a training run that "
                                 "diverged?); use another model or train again");
    if (source.sizes() != target.sizes()) {
      std::ostringstream why;
      why << "weights \"" << name << "\" have shape " << source.sizes() << " but the network expects "
          << target.sizes() << " (a model for another network or number of classes?)";
      throw Error(path.string(), why.str());
    }
    target.copy_(source);
    ++matched;
  };
  for (auto& item : net.named_parameters(true)) assign(item.key(), item.value());
  for (auto& item : net.named_buffers(true)) assign(item.key(), item.value());
  if (matched != dict.size())
    throw Error(path.string(), "holds " + std::to_string(dict.size()) + " tensors, the network " +
                                   std::to_string(matched) + ": not the same architecture");
}
}  // namespace

std::string model_info_to_json(const ModelInfo& info) {
  json j;
  j["architecture"] = info.network.architecture;
  j["in_channels"] = info.network.in_channels;
  j["num_classes"] = info.network.num_classes;
  json classes = json::array();
  for (const auto& [name, value] : info.classes.entries) classes.push_back({{"name", name}, {"value", value}});
  j["classes"] = classes;
  j["input_size"] = info.input_size;
  j["normalization"] = {{"mode", info.normalization.mode},
                        {"mean", info.normalization.mean},
                        {"std", info.normalization.std}};
  j["postprocessing"] = info.postprocessing;
  if (info.framing)
    j["framing"] = {{"top", info.framing->top},
                    {"bottom", info.framing->bottom},
                    {"left", info.framing->left},
                    {"right", info.framing->right}};
  if (!info.overlaps.empty()) {
    json overlaps = json::array();
    for (const auto& o : info.overlaps) overlaps.push_back({{"under", o.under}, {"over", o.over}});
    j["overlaps"] = overlaps;
  }
  if (info.training_intensity)
    j["training_intensity"] = {{"low", info.training_intensity->low}, {"high", info.training_intensity->high}};
  if (info.quality) j["quality"] = json::parse(quality_record_to_json(*info.quality));
  j["provenance"] = json::parse(info.provenance_json.empty() ? "{}" : info.provenance_json);
  return j.dump(1);
}

ModelInfo model_info_from_json(const std::string& text, const std::string& source) {
  ModelInfo info;
  std::string quality;  // read once the class table is checked
  try {
    const json j = json::parse(text);
    info.network.architecture = j.at("architecture").get<std::string>();
    info.network.in_channels = j.at("in_channels").get<int64_t>();
    // Whole numbers are read as such: nlohmann would turn 5.7 into 5 and 2^32 + 5 into 5.
    auto whole = [&](const json& value, const std::string& what) {
      if (!value.is_number_integer()) throw Error(source, "model metadata: " + what + " must be a whole number; the file is damaged");
      return value.get<int64_t>();
    };
    info.network.num_classes = whole(j.at("num_classes"), "num_classes");
    for (const auto& c : j.at("classes")) {
      const int64_t value = whole(c.at("value"), "a class value");
      if (!is_label_value(value))
        throw Error(source, "model metadata has a class value outside 0..255 (" + std::to_string(value) + "); the file is damaged");
      info.classes.entries.emplace_back(c.at("name").get<std::string>(), static_cast<int>(value));
    }
    for (const auto& side : j.at("input_size")) info.input_size.push_back(whole(side, "input_size"));
    const auto& n = j.at("normalization");
    info.normalization.mode = n.at("mode").get<std::string>();
    info.normalization.mean = n.at("mean").get<double>();
    info.normalization.std = n.at("std").get<double>();
    info.postprocessing = j.value("postprocessing", std::vector<std::string>{});  // absent before 2026-12
    if (j.contains("framing")) {
      const auto& f = j.at("framing");
      info.framing = Framing{f.at("top").get<double>(), f.at("bottom").get<double>(), f.at("left").get<double>(),
                             f.at("right").get<double>()};
    }
    if (j.contains("overlaps"))
      for (const auto& o : j.at("overlaps")) {
        const int64_t under = whole(o.at("under"), "an overlap's class"), over = whole(o.at("over"), "an overlap's class");
        // Beyond 0..255 no class has the value; said before it would wrap into one that has.
        if (!is_label_value(under) || !is_label_value(over))
          throw Error(source, "model metadata has an overlap of a class value outside 0..255; the file is damaged");
        info.overlaps.push_back({static_cast<int>(under), static_cast<int>(over)});
      }
    if (j.contains("training_intensity"))
      info.training_intensity = IntensityRange{j.at("training_intensity").at("low").get<double>(),
                                               j.at("training_intensity").at("high").get<double>()};
    if (j.contains("quality")) quality = j.at("quality").dump();
    info.provenance_json = j.value("provenance", json::object()).dump();
  } catch (const json::exception& e) {
    throw Error(source, "model metadata is malformed: " + json_reason(e) + "; the file is damaged");
  }
  if (info.classes.size() != info.network.num_classes)
    throw Error(source, "model metadata lists " + std::to_string(info.classes.size()) + " classes for " +
                            std::to_string(info.network.num_classes) + " output channels");
  // Channel k is the k-th class in ascending value: a table out of order would relabel every structure.
  for (size_t k = 1; k < info.classes.entries.size(); ++k)
    if (info.classes.entries[k].second <= info.classes.entries[k - 1].second)
      throw Error(source, "model metadata lists its classes out of ascending value order or a value twice; the file is damaged");
  if (info.input_size.size() != 2 || info.input_size[0] <= 0 || info.input_size[1] <= 0 ||
      info.input_size[0] > kMaxInputSide || info.input_size[1] > kMaxInputSide)
    throw Error(source, "model metadata has no valid input_size [H, W] (each 1.." + std::to_string(kMaxInputSide) + ")");
  if (info.normalization.mode != "dataset" && info.normalization.mode != "image")
    throw Error(source, "unknown normalization mode \"" + info.normalization.mode + "\"");
  if (!(info.normalization.std > 0)) throw Error(source, "normalization std must be positive");
  check_postprocessing_steps(info.postprocessing, source);
  if (info.framing) {
    const auto& f = *info.framing;
    for (double margin : {f.top, f.bottom, f.left, f.right})
      if (!(margin >= 0.0 && margin <= 10.0))
        throw Error(source, "model metadata has a framing margin outside 0..10 (" + std::to_string(margin) + ")");
  }
  check_overlaps(info.overlaps, info.classes, source);
  if (info.training_intensity && !(std::isfinite(info.training_intensity->low) && std::isfinite(info.training_intensity->high) &&
                                   info.training_intensity->low <= info.training_intensity->high))
    throw Error(source, "model metadata has a training_intensity whose low is not a finite number at most its high");
  if (!quality.empty()) info.quality = std::make_shared<const QualityRecord>(quality_record_from_json(quality, info.classes, source));
  return info;
}

void check_overlaps(const std::vector<Overlap>& overlaps, const ClassTable& classes, const std::string& source) {
  for (const auto& o : overlaps) {
    if (o.under == 0 || o.over == 0 || o.under == o.over || !classes.contains(o.under) || !classes.contains(o.over))
      throw Error(source, "overlap " + std::to_string(o.under) + " under " + std::to_string(o.over) +
                              ": both must be different structures of the class table (not background)");
  }
}

void save_model(const Model& model, const fs::path& path) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("format", std::string(kModelFormat));
  const auto state = state_dict_of(*model.net, model.stored_as, path);
  auto metadata = json::parse(model_info_to_json(model.info));
  metadata["weights_sha256"] = weights_sha256(state, path);
  dict.insert("metadata", metadata.dump(1));
  dict.insert("state_dict", state);
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
}

const char* precision_name(WeightPrecision precision) {
  return precision == WeightPrecision::float16 ? "float16" : "float32";
}

bool is_model_path(const fs::path& path) {
  if (fs::is_directory(path)) return fs::exists(path / "model.pth") && !fs::exists(path / "dataset.json");
  if (path.extension() == ".pth") return is_model_file(path);
  // Another name (model.pt, a file without extension) is read whole only when it opens as a zip
  // archive does, so that a large image given in its place costs two bytes.
  if (!fs::is_regular_file(path)) return false;  // a FIFO is not opened: that would wait for a writer
  char magic[2] = {};
  std::ifstream in(path, std::ios::binary);
  return in.read(magic, 2) && magic[0] == 'P' && magic[1] == 'K' && is_model_file(path);
}

bool is_model_file(const fs::path& path) {
  if (!fs::is_regular_file(path)) return false;
  try {
    const std::string bytes = read_file(path);
    // A damaged file that still names our format counts, so that load_model says what is wrong.
    if (!torch_archive_problem(bytes).empty())
      return bytes.compare(0, 2, "PK") == 0 && bytes.find(kModelFormat) != std::string::npos;
    const c10::IValue value = unpickle(bytes, path);
    if (!value.isGenericDict()) return false;
    const auto dict = value.toGenericDict();
    const auto format = dict.find("format");
    return format != dict.end() && format->value().isString() && format->value().toStringRef() == kModelFormat;
  } catch (const Error&) {
    return false;
  }
}

Model load_model(const fs::path& path_or_run) {
  fs::path path = path_or_run;
  if (fs::is_directory(path)) {
    path = path / "model.pth";
    if (!fs::exists(path))
      throw Error(path_or_run.string(), "is a folder without model.pth (not a finished training run?)");
  }
  const c10::IValue value = read_pickle(path);
  if (!value.isGenericDict()) throw Error(path.string(), "not a segsuite model file (expected a dict)");
  const auto dict = value.toGenericDict();
  auto format = dict.find("format");
  if (format == dict.end() || !format->value().isString() || format->value().toStringRef() != kModelFormat)
    throw Error(path.string(), std::string("not a segsuite model file (no format \"") + kModelFormat +
                                   "\"; a bare PyTorch state_dict lacks what inference needs: make models with seg-train)");
  auto metadata = dict.find("metadata");
  auto weights = dict.find("state_dict");
  if (metadata == dict.end() || !metadata->value().isString() || weights == dict.end() ||
      !weights->value().isGenericDict())
    throw Error(path.string(), "model file lacks its metadata or state_dict");
  Model model;
  model.info = model_info_from_json(metadata->value().toStringRef(), path.string());
  const auto state = weights->value().toGenericDict();
  const json metadata_json = json::parse(metadata->value().toStringRef());
  if (const auto recorded = metadata_json.find("weights_sha256"); recorded != metadata_json.end()) {
    // (Absent in files written before models carried it.)
    if (!recorded->is_string() || recorded->get<std::string>().size() != 64)
      throw Error(path.string(), "model metadata is malformed: weights_sha256 is not 64 hexadecimal digits");
    if (weights_sha256(state, path) != recorded->get<std::string>())
      throw Error(path.string(), "weights do not match the SHA-256 in its metadata (changed since they were saved); "
                                 "download or copy it again");
    model.weights_sha256 = recorded->get<std::string>();
  }
  try {
    model.net = make_network(model.info.network);
  } catch (const UsageError& e) {
    throw Error(path.string(), e.what());
  }
  copy_state(*model.net, state, path);
  for (const auto& item : state)
    if (item.value().toTensor().scalar_type() == torch::kHalf) model.stored_as = WeightPrecision::float16;
  model.net->eval();
  return model;
}

void load_state_dict(torch::nn::Module& net, const fs::path& path) {
  const c10::IValue value = read_pickle(path);
  if (!value.isGenericDict()) throw Error(path.string(), "not a state_dict (expected a dict of tensors)");
  auto dict = value.toGenericDict();
  auto inner = dict.find("state_dict");
  if (inner != dict.end() && inner->value().isGenericDict()) dict = inner->value().toGenericDict();
  copy_state(net, dict, path);
}

}  // namespace seg
