// The course notebook's tensor files: JSRT_img0_lms.pth (z-normalised images) and
// jsrt_seg_masks.pth (one-hot masks), read through seg::load_pickle_archive, written with pickle_save.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/torch_archive.h>
#include <seg/io/dataset_io.h>

#include <torch/serialize.h>
#include <torch/torch.h>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <cstdio>
#include <cstring>
#include <sstream>

#include "jsrt_names.h"

namespace seg::io {
namespace fs = std::filesystem;

namespace detail {

std::vector<std::string> jsrt_case_ids() {
  std::vector<std::string> ids;
  char name[24];  // room for any int: GCC -O1 checks the format against the whole range
  for (int i = 1; i <= 154; ++i) {
    std::snprintf(name, sizeof name, "JPCLN%03d", i);
    ids.emplace_back(name);
  }
  for (int i = 1; i <= 93; ++i) {
    std::snprintf(name, sizeof name, "JPCNN%03d", i);
    ids.emplace_back(name);
  }
  return ids;
}

const std::vector<std::string>& scr_structures() {
  static const std::vector<std::string> names{"right_lung", "left_lung", "heart", "right_clavicle", "left_clavicle"};
  return names;
}

}  // namespace detail

namespace {

// LibTorch 1.13's unpickler lacks SETITEM, which Python writes for a dict of one item (as
// the notebook's {"JSRT_img0": images}). Such a top-level dict is rewritten to the
// MARK ... SETITEMS form it does read. Returns false when the pickle is not of that shape.
bool rewrite_single_item_dict(std::string& pickle) {
  if (pickle.size() < 8 || pickle.compare(0, 2, "\x80\x02") != 0 || pickle[2] != '}') return false;
  if (pickle.compare(pickle.size() - 2, 2, "s.") != 0) return false;
  size_t after_memo = 3;
  if (pickle[3] == 'q') after_memo = 5;        // BINPUT n
  else if (pickle[3] == 'r') after_memo = 8;   // LONG_BINPUT nnnn
  pickle[pickle.size() - 2] = 'u';             // SETITEMS
  pickle.insert(after_memo, 1, '(');           // MARK
  return true;
}

c10::IValue load_python_pickle(const std::string& bytes) {
  std::istringstream stream(bytes);
  caffe2::serialize::PyTorchStreamReader archive(&stream);
  auto [data, size] = archive.getRecord("data.pkl");
  std::string pickle(static_cast<const char*>(data.get()), size);
  if (!rewrite_single_item_dict(pickle)) throw Error("pickle", "unsupported pickle");
  size_t position = 0;
  auto read = [&](char* buffer, size_t n) {
    n = std::min(n, pickle.size() - position);
    std::memcpy(buffer, pickle.data() + position, n);
    position += n;
    return n;
  };
  auto read_record = [&](const std::string& name) { return std::get<0>(archive.getRecord("data/" + name)); };
  torch::jit::Unpickler unpickler(read, nullptr, nullptr, read_record, c10::nullopt);
  unpickler.set_version(archive.version());
  return unpickler.parse_ivalue();
}

c10::IValue load_pickle(const fs::path& path) {
  const std::string bytes = read_file(path);
  if (bytes.compare(0, 2, "PK") != 0)
    throw Error(path.string(), "is not a zip-format torch.save file (truncated, or saved by PyTorch < 1.6 or with "
                               "_use_new_zipfile_serialization=False); re-save it with torch.save(obj, path)");
  if (const auto problem = torch_archive_problem(bytes); !problem.empty())
    throw Error(path.string(), "cannot be read as a torch.save file: " + problem);
  try {
    return load_pickle_archive(bytes);
  } catch (const std::exception& first_error) {
    try {
      return load_python_pickle(bytes);
    } catch (const std::exception&) {
    }
    const auto& e = first_error;
    const std::string why = e.what();
    throw Error(path.string(), "cannot be read as a torch.save file (" + why.substr(0, why.find('\n')) +
                                   "); it is truncated or holds objects other than tensors, "
                                   "lists and dicts; re-save it with torch.save(obj, path)");
  }
}

// The tensor itself, or the one under `key` in a dict (the notebook's images file is a dict).
at::Tensor tensor_in(const c10::IValue& value, const std::string& key, const fs::path& path) {
  at::Tensor found;
  if (value.isTensor()) {
    found = value.toTensor();
  } else if (value.isGenericDict()) {
    const auto dict = value.toGenericDict();
    if (dict.contains(key) && dict.at(key).isTensor()) found = dict.at(key).toTensor();
    else if (dict.size() == 1 && dict.begin()->value().isTensor()) found = dict.begin()->value().toTensor();
    else throw Error(path.string(), "holds a dict without a tensor under \"" + key + "\"");
  } else {
    throw Error(path.string(), "holds neither a tensor nor a dict of tensors");
  }
  check_tensor_in_storage(found, path.string(), "its tensor");
  return found;
}

std::string shape_text(const at::Tensor& t) {
  std::string text;
  for (auto s : t.sizes()) text += (text.empty() ? "" : " x ") + std::to_string(s);
  return text;
}

}  // namespace

Dataset import_notebook_files(const fs::path& images_pth, const fs::path& masks_pth, int64_t train_count) {
  at::Tensor images = tensor_in(load_pickle(images_pth), "JSRT_img0", images_pth);
  at::Tensor masks = tensor_in(load_pickle(masks_pth), "masks", masks_pth);
  if (images.dim() == 4 && images.size(1) == 1) images = images.squeeze(1);
  if (images.dim() != 3)
    throw Error(images_pth.string(), "images are " + shape_text(images) + ", expected N x H x W");
  if (masks.dim() != 4)
    throw Error(masks_pth.string(), "masks are " + shape_text(masks) + ", expected N x C x H x W one-hot");
  if (masks.size(0) != images.size(0) || masks.size(2) != images.size(1) || masks.size(3) != images.size(2))
    throw Error(masks_pth.string(), "masks are " + shape_text(masks) + " but the images in " + images_pth.string() +
                                        " are " + shape_text(images) + "; they must hold the same cases and size");
  if (masks.size(1) > 255) throw Error(masks_pth.string(), "has more than 255 channels; expected one per structure");

  // Images: a linear stretch of the global min..max onto 0..255.
  images = images.to(torch::kFloat);
  const float low = images.min().item<float>(), high = images.max().item<float>();
  const float scale = high > low ? 255.0f / (high - low) : 0.0f;
  Dataset data;
  data.images = ((images - low) * scale).round().clamp(0, 255).to(torch::kByte);

  // Labels exactly as the notebook builds them: channel c sets label c + 1 where it is 1,
  // later channels overwriting earlier ones.
  const int64_t channels = masks.size(1);
  auto labels = torch::zeros({masks.size(0), masks.size(2), masks.size(3)}, torch::kByte);
  for (int64_t c = 0; c < channels; ++c)
    labels.masked_fill_(masks.select(1, c) == 1, static_cast<int64_t>(c + 1));
  data.labels = labels;

  const int64_t n = images.size(0);
  data.name = "notebook";
  data.source = images_pth.string();
  if (n == detail::kJsrtCases) {
    data.cases = detail::jsrt_case_ids();
  } else {
    char name[32];
    for (int64_t i = 0; i < n; ++i) {
      std::snprintf(name, sizeof name, "case%04lld", static_cast<long long>(i));
      data.cases.emplace_back(name);
    }
  }
  data.classes.entries.emplace_back("background", 0);
  for (int64_t c = 0; c < channels; ++c)
    data.classes.entries.emplace_back(channels == 5 ? detail::scr_structures()[static_cast<size_t>(c)]
                                                    : "label_" + std::to_string(c + 1),
                                      static_cast<int>(c + 1));
  const int64_t train = std::clamp<int64_t>(train_count, 0, n);
  data.splits["train"] = std::vector<std::string>(data.cases.begin(), data.cases.begin() + train);
  if (train < n) data.splits["test"] = std::vector<std::string>(data.cases.begin() + train, data.cases.end());
  data.validate();
  return data;
}

void export_notebook_files(const Dataset& data, const fs::path& images_pth, const fs::path& masks_pth) {
  data.validate();
  if (!data.labels.defined()) throw Error(data.source, "has no label maps; the notebook's masks file needs them");
  // z-normalised over the whole set, as the notebook's "already z-normalized" images.
  auto images = data.images.to(torch::kFloat);
  const auto mean = images.mean(), std = images.std();
  images = (images - mean) / std.clamp_min(1e-6);
  const int64_t channels = data.classes.max_value();
  if (channels < 1) throw Error(data.source, "has no foreground class to export");
  std::vector<at::Tensor> one_hot;
  for (int64_t c = 1; c <= channels; ++c) one_hot.push_back((data.labels == c).to(torch::kByte));
  const auto masks = torch::stack(one_hot, 1).contiguous();

  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("JSRT_img0", images.contiguous());
  const auto image_bytes = torch::pickle_save(c10::IValue(dict));
  const auto mask_bytes = torch::pickle_save(c10::IValue(masks));
  write_file_atomically(images_pth, std::string(image_bytes.begin(), image_bytes.end()));
  write_file_atomically(masks_pth, std::string(mask_bytes.begin(), mask_bytes.end()));
}

}  // namespace seg::io
