#pragma once
// What a model file holds, as seg-inspect shows it (network, classes, normalisation, clean-up,
// framing, quality control, the training record and the models it was fine-tuned from), and
// the models that a name finds, one a line.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace seg {

struct Model;  // seg/model_file.h

// The description of `model`, read from `path`, as text lines, or as a JSON object: the
// model's metadata with the path, trainable parameters, weight precision, integrity and the
// validation cases added. Both end with a newline.
std::string model_description_text(const std::filesystem::path& path, const Model& model);
std::string model_description_json(const std::filesystem::path& path, const Model& model);

// "test mean Dice 0.9712" when the training the provenance records validated on the whole
// split "test", else "-".
std::string recorded_test_figure(const std::string& provenance_json);

// A model that a name finds (seg/model_search.h), in brief.
struct ModelListing {
  std::string name;              // what --model takes
  std::filesystem::path path;
  uintmax_t bytes = 0;
  std::string network = "-";     // "-" when the file cannot be read
  std::optional<int64_t> classes;
  std::string test = "-";        // recorded_test_figure, or "unreadable: <why>"
};

// Every model of `folders` (list_models), each file read for its network, classes and
// recorded test figure; a file that cannot be read is listed as unreadable, with the reason.
std::vector<ModelListing> list_found_models(const std::vector<std::filesystem::path>& folders);

// One line a model (name, network, classes, file size, test figure, path), or a line saying
// that `folders` hold none; and the same as a JSON array.
std::string model_listing_text(const std::vector<ModelListing>& models, const std::vector<std::filesystem::path>& folders);
std::string model_listing_json(const std::vector<ModelListing>& models);

}  // namespace seg
