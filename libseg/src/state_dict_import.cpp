// Python state_dicts into our models and back: the name check, the copy, the model's
// description and provenance, and the plain dict Python's load_state_dict takes.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/state_dict.h>

#include <nlohmann/json.hpp>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <set>
#include <sstream>
#include <unordered_map>

namespace seg {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string shape_of(const at::Tensor& t) {
  std::ostringstream text;
  text << t.sizes();
  return text.str();
}

// Every parameter and buffer of `net`, under our names, in registration order.
std::vector<std::pair<std::string, at::Tensor>> tensors_of(torch::nn::Module& net) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (auto& item : net.named_parameters(true)) tensors.emplace_back(item.key(), item.value());
  for (auto& item : net.named_buffers(true)) tensors.emplace_back(item.key(), item.value());
  return tensors;
}

}  // namespace

void load_python_state_dict(torch::nn::Module& net, const std::string& architecture, const StateDict& state,
                            const std::string& source) {
  std::unordered_map<std::string, const at::Tensor*> by_name;
  for (const auto& [name, tensor] : state) by_name.emplace(name, &tensor);
  const auto targets = tensors_of(net);
  std::vector<std::pair<const at::Tensor*, at::Tensor>> copies;  // file's tensor, network's tensor
  std::set<std::string> expected;
  const std::string which = "the network " + architecture;
  for (const auto& [ours, target] : targets) {
    const std::string name = python_parameter_name(architecture, ours);
    expected.insert(name);
    const auto it = by_name.find(name);
    if (it == by_name.end())
      throw Error(source, "has no tensor \"" + name + "\", which " + which + " needs (its " +
                              std::to_string(targets.size()) + " tensors run from \"" +
                              python_parameter_name(architecture, targets.front().first) + "\" to \"" +
                              python_parameter_name(architecture, targets.back().first) +
                              "\"); is it the state_dict of another network? --network chooses it");
    const at::Tensor& tensor = *it->second;
    if (!at::isFloatingType(tensor.scalar_type()))
      throw Error(source, "tensor \"" + name + "\" holds " + std::string(c10::toString(tensor.scalar_type())) +
                              " values where " + which + " has floating-point weights");
    if (tensor.sizes() != target.sizes())
      throw Error(source, "tensor \"" + name + "\" has shape " + shape_of(tensor) + " where " + which + " expects " +
                              shape_of(target) +
                              "; another number of classes (--data) or another network (--network)?");
    copies.emplace_back(&tensor, target);
  }
  for (const auto& [name, tensor] : state)
    if (expected.count(name) == 0)
      throw Error(source, "has a tensor \"" + name + "\" that " + which +
                              " does not have; is it the state_dict of another network? --network chooses it");
  torch::NoGradGuard no_grad;
  for (auto& [from, to] : copies) to.copy_(from->to(to.scalar_type()));
}

StateDict python_state_dict(const Model& model) {
  StateDict state;
  for (const auto& [name, tensor] : tensors_of(*model.net))
    state.emplace_back(python_parameter_name(model.info.network.architecture, name),
                       tensor.detach().to(torch::kCPU, torch::kFloat).contiguous());
  return state;
}

void save_state_dict(const StateDict& state, const fs::path& path) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& [name, tensor] : state) dict.insert(name, tensor.detach().to(torch::kCPU).contiguous());
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  write_file_atomically(path, std::string_view(bytes.data(), bytes.size()));
}

Model import_state_dict(const fs::path& weights, const Dataset& data, const StateDictImport& how) {
  Model model;
  ModelInfo& info = model.info;
  info.network = {how.architecture, 1, data.classes.size()};
  info.classes = data.classes;
  info.input_size = {data.images.size(1), data.images.size(2)};
  if (how.normalization) {
    info.normalization = *how.normalization;
  } else {
    // As seg-train computes it: mean and standard deviation of every pixel of the train split.
    if (data.splits.count("train") == 0)
      throw Error(data.source,
                  "has no train split to compute the normalisation from; give --mean M --std S (what the "
                  "weights were trained with) or --normalize image");
    const auto pixels = data.subset("train").images.to(torch::kDouble);
    info.normalization = {"dataset", pixels.mean().item<double>(), pixels.std().item<double>()};
    if (!(info.normalization.std > 0))
      throw Error(data.source,
                  "its train images are constant; give --mean M --std S (what the weights were trained with)");
  }
  model.net = make_network(info.network);
  const StateDict state = read_state_dict(weights);
  load_python_state_dict(*model.net, how.architecture, state, weights.string());
  model.net->eval();
  std::error_code ec;
  const fs::path absolute = fs::absolute(weights, ec);
  info.provenance_json = json{
      {"imported",
       {{"from", (ec ? weights : absolute).string()},
        {"format", "PyTorch state_dict"},
        {"network", how.architecture},
        {"names", has_notebook_names(how.architecture) ? "the course notebook's" : "segsuite's"},
        {"tensors", state.size()},
        {"normalization",
         {{"mode", info.normalization.mode}, {"mean", info.normalization.mean}, {"std", info.normalization.std}}},
        {"classes_from",
         data.source}}}}.dump();
  return model;
}

}  // namespace seg
