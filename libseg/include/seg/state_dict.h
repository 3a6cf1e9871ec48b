#pragma once
// PyTorch state_dicts: weights trained in Python (torch.save(model.state_dict(), f)) made into
// our model files, and our models' weights written back for Python's load_state_dict.
#include <seg/dataset.h>
#include <seg/model_file.h>

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace seg {

// Tensors by name, in the order the file holds them.
using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

// Reads what Python's torch.save wrote of a state_dict: an OrderedDict (model.state_dict()), a
// plain dict of tensors, or a dict holding one under "state_dict" or "model_state_dict". The
// archive passes torch_archive_problem first; then its pickle is read by our own reader of the
// small subset torch.save uses for these (never LibTorch's unpickler, which cannot read an
// OrderedDict). An opcode or a callable outside that subset, a length the bytes do not hold, a
// tensor reaching past its storage: each throws seg::Error naming the file, in one line.
StateDict read_state_dict(const std::filesystem::path& path);
// The same from the archive's bytes; `source` names it in errors.
StateDict state_dict_from_bytes(const std::string& bytes, const std::string& source);

// The bytes of the storage record data/<key>, or nullopt when there is none.
using StorageRecords = std::function<std::optional<std::string>(const std::string& key)>;
// The pickle reader alone: `pickle` is data.pkl's bytes. What state_dict_from_bytes runs once the
// archive has passed its check; tests and the fuzzer reach it directly, past that check.
StateDict state_dict_from_pickle(const std::string& pickle, const StorageRecords& records, const std::string& source);

// Writes `state` as a plain dict of CPU tensors that Python's torch.load reads (atomically).
void save_state_dict(const StateDict& state, const std::filesystem::path& path);

// The name Python gives our parameter `name` of the network `architecture`, from one table per
// registered network: fcn and fcn-wide are the notebook's flat nn.Sequential (our group "1"'s
// conv "1.0.weight" is its "3.weight", our classifier "4.bias" its "12.bias"); light-unet has
// the notebook's LightUNet names, which are ours; fast and res-unet exist only here and keep
// ours. Throws seg::UsageError for an architecture without a table.
std::string python_parameter_name(const std::string& architecture, const std::string& name);
// Whether those names are the course notebook's (fcn, fcn-wide, light-unet) rather than ours alone.
bool has_notebook_names(const std::string& architecture);

// The model's weights under Python's names, as contiguous float32 CPU tensors.
StateDict python_state_dict(const Model& model);

// Copies `state` (Python's names) into `net`, a network of `architecture`: every parameter
// and buffer must be there once, with its shape, as a floating-point tensor, and nothing else.
// Throws seg::Error naming `source` and the first missing, extra or misshapen tensor.
void load_python_state_dict(torch::nn::Module& net, const std::string& architecture, const StateDict& state,
                            const std::string& source);

// How a Python state_dict becomes a model.
struct StateDictImport {
  std::string architecture;                    // a network_registry() name
  std::optional<Normalization> normalization;  // default: "dataset", mean and std of the train split
};

// A model of the weights in `weights`: the network `how.architecture` with `data`'s class
// table (channel k is class k of the table) and image size, normalised as `how` says or as
// seg-train would have on `data`'s train split. The provenance records the import (the file,
// the network, the normalisation, the data). Throws seg::Error naming the file at fault.
Model import_state_dict(const std::filesystem::path& weights, const Dataset& data, const StateDictImport& how);

}  // namespace seg
