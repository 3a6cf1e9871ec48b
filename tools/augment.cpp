// seg-augment: writes random augmentations of one case as training draws them (one recipe's,
// the notebook's affine one by default) and a montage of them with label overlays, to look at
// what training sees.
#include <seg/augment_pipeline.h>
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <seg/output.h>
#include <seg/predict.h>
#include <seg/recipe.h>
#include <seg/viz/overlay.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <random>
#include <sstream>

#include "common.h"
#include "support_data.h"
#include "support_recipe.h"
#include "tools.h"

namespace seg::tools {
namespace {
namespace fs = std::filesystem;

struct Sample {
  Image image;    // H x W, any pixel type the reader gives
  Image labels;   // H x W kByte
  ClassTable classes;
  std::string source;
};

// One case of a data set: from a folder only its two files are read; a pack is loaded whole.
Sample case_from_data(const std::string& data_path, const std::string& case_id) {
  Sample s;
  if (is_tensor_pack(data_path)) {
    Dataset d = load_data(data_path);
    const auto it = std::find(d.cases.begin(), d.cases.end(), case_id);
    if (it == d.cases.end()) throw Error(data_path, "has no case " + case_id + "; see seg-inspect for its cases");
    const auto row = it - d.cases.begin();
    s.image.pixels = d.images[row].clone();
    s.image.pixel_type = d.images.scalar_type() == at::kByte ? "uint8" : "float32";
    s.labels.pixels = d.labels[row].clone();
    s.labels.pixel_type = "uint8";
    s.classes = d.classes;
  } else {
    const fs::path json_path = fs::is_directory(data_path) ? fs::path(data_path) / "dataset.json" : fs::path(data_path);
    const auto spec = DatasetSpec::read(json_path);
    if (std::find(spec.cases.begin(), spec.cases.end(), case_id) == spec.cases.end())
      throw Error(json_path.string(), "lists no case " + case_id + "; give one of its cases with --case");
    if (spec.labels_pattern.empty()) throw Error(json_path.string(), "names no label maps (\"labels\")");
    s.image = io::read_image(spec.image_path(json_path.parent_path(), case_id));
    s.labels = io::read_label_map(spec.label_path(json_path.parent_path(), case_id));
    s.classes = spec.classes;
  }
  s.source = data_path + "#" + case_id;
  return s;
}

// Back to the input's pixel type: integers rounded and clamped to their range.
at::Tensor to_pixel_type(const at::Tensor& values, at::ScalarType type) {
  if (at::isFloatingType(type)) return values.to(type);
  double low = 0, high = 255;
  if (type == at::kShort) low = -32768, high = 32767;
  if (type == at::kInt) low = 0, high = 65535;  // widened uint16
  return values.round().clamp(low, high).to(type);
}

const std::vector<std::string> kPaddings{"zeros", "border", "minimum"};

// The pipeline on K copies of the sample: the warp on its grey values (out-of-image pixels
// follow the padding: zeros are black here), the rest on each copy standardised, as training
// applies them to normalised images, and brought back to its own grey scale.
std::pair<at::Tensor, at::Tensor> augment_copies(const AugmentPipeline& pipeline, const BatchDraws& draws, const Sample& sample,
                                                 int64_t count, const at::Device& device) {
  const int64_t h = sample.image.height(), w = sample.image.width();
  const auto images = sample.image.pixels.to(at::kFloat).view({1, 1, h, w}).expand({count, 1, h, w}).to(device);
  const auto labels = sample.labels.pixels.view({1, h, w}).expand({count, h, w}).to(device);
  auto [x, y] = pipeline.apply_warp(images, labels, draws);
  const bool acts_on_images = std::any_of(pipeline.steps().begin(), pipeline.steps().end(), [](auto* a) { return !a->geometric; });
  if (acts_on_images) {
    const auto mean = x.mean({1, 2, 3}, true), deviation = x.std({1, 2, 3}, true, true).clamp_min(1e-6);
    x = pipeline.apply_to_images((x - mean) / deviation, draws) * deviation + mean;
  }
  return {x.squeeze(1).cpu(), y.cpu()};
}

// The case to augment: --data/--case, or --image/--labels.
Sample read_sample(const std::string& data_path, const std::string& case_id, const std::string& image_path,
                   const std::string& labels_path) {
  Sample sample;
  if (!data_path.empty()) {
    sample = case_from_data(data_path, case_id);
  } else {
    sample = {io::read_image(image_path), io::read_label_map(labels_path), {}, image_path};
    check_name(io::case_id_of(image_path), "case ID", image_path);
  }
  if (sample.image.channels() != 1)
    throw Error(sample.source, "is a colour image; augmentation takes one channel (convert it to grey)");
  if (sample.image.pixels.sizes() != sample.labels.pixels.sizes())
    throw Error(sample.source, "image and label map differ in size; resample one to the other");
  if (sample.classes.entries.empty()) sample.classes = ClassTable::numbered(sample.labels.pixels.max().item<int>() + 1);
  return sample;
}

// "scale 0.1, zoom 0.5": the augmentations that are on.
std::string strengths_text(const AugmentOptions& strengths) {
  std::ostringstream text;
  for (const auto& a : augmentations())
    if (strengths.strength(a.name) > 0) text << (text.tellp() > 0 ? ", " : "") << a.name << " " << strengths.strength(a.name);
  return text.tellp() > 0 ? text.str() : "none";
}

}  // namespace

int augment(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("augment", err, [&]() -> int {
    CLI::App app{"Writes K random augmentations of one case, drawn and applied as training draws and applies them:\n"
                 "a recipe's augmentations (--recipe; default: the notebook's affine one, theta = I + 0.1 randn), with\n"
                 "seg-train's --augment-* options over them. Output: OUT/images/<case>_augNN.png, OUT/labels/\n"
                 "<case>_augNN.png, OUT/montage.png (the original and each sample with label overlays) and\n"
                 "OUT/augment.json (seed, strengths, matrices). The same --seed gives the same samples, on CPU and CUDA.",
                 "seg-augment"};
    add_max_pixels_option(app);
    std::string data_path, case_id, image_path, labels_path, out_dir, device_name = "cpu", recipe_name, padding_name;
    int64_t count = 8, stage = 0;
    int columns = 4, threads = 0;
    uint64_t seed = 0;
    bool overwrite = false;
    RecipeOptions options;
    app.add_option("--data", data_path, "data set: folder with dataset.json, or a tensor pack");
    app.add_option("--case", case_id, "the case to augment (with --data)");
    app.add_option("--image", image_path, "an image file instead of --data/--case");
    app.add_option("--labels", labels_path, "its label map (with --image)");
    app.add_option("--count,-k", count, "how many augmented samples")->capture_default_str();
    auto* seed_option = app.add_option("--seed", seed, "random seed (default: a fresh one, printed)");
    app.add_option("--recipe", recipe_name, "show this recipe's augmentations: a file, a run folder (the recipe it ran) or a name (" +
                                                join(recipe_names(), ", ") + ")");
    app.add_option("--stage", stage, "of a staged recipe, this stage's (default: the last)");
    options.add_augmentations(app, /*short_aliases=*/true);
    app.add_option("--padding", padding_name, "what a warp shows beyond the image: zeros, border (edge repeated) or minimum "
                                              "(default: drawn as training draws it)")->check(CLI::IsMember(kPaddings));
    app.add_option("--out,-o", out_dir, "output folder (created)")->required();
    app.add_option("--columns", columns, "montage tiles per row")->capture_default_str();
    app.add_option("--device", device_name, "cpu, cuda, cuda:N or auto")->capture_default_str();
    app.add_option("--threads", threads, "LibTorch threads (default: all cores)");
    app.add_flag("--overwrite", overwrite, "replace outputs that exist already in OUT");
    const Recipe notebook;
    options.show_defaults(notebook);
    if (!parse(app, args, out)) return kOk;
    set_threads(threads);
    if (count < 1 || count > 999) throw UsageError("--count " + std::to_string(count) + ": give 1..999 samples");
    if (columns < 1) throw UsageError("--columns must be at least 1");
    const bool from_data = !data_path.empty() || !case_id.empty(), from_files = !image_path.empty() || !labels_path.empty();
    if (from_data == from_files) throw UsageError("give either --data DIR --case ID, or --image FILE --labels FILE");
    if (from_data && (data_path.empty() || case_id.empty())) throw UsageError("--data and --case go together");
    if (from_files && (image_path.empty() || labels_path.empty())) throw UsageError("--image and --labels go together");
    const auto stages = recipe_with_options(recipe_name.empty() ? RecipeText{"{}", "the notebook's augmentation"} : read_recipe(recipe_name), options);
    if (stage < 0 || stage > static_cast<int64_t>(stages.size()))
      throw UsageError("--stage " + std::to_string(stage) + ": the recipe has " + std::to_string(stages.size()) + " stage(s)");
    const AugmentOptions& strengths = stages[static_cast<size_t>(stage == 0 ? stages.size() - 1 : stage - 1)].augmentation;
    const at::Device device = parse_device(device_name);
    if (seed_option->count() == 0) seed = std::random_device{}();
    const Sample sample = read_sample(data_path, case_id, image_path, labels_path);
    if (from_files) case_id = io::case_id_of(image_path);

    // One batch of K copies, drawn from the one seeded generator as a training step draws them.
    const int64_t h = sample.image.height(), w = sample.image.width();
    const AugmentPipeline pipeline(strengths);
    at::Generator gen = make_seeded_generator(seed);
    BatchDraws draws = pipeline.draw({count, h, w}, gen);
    if (!padding_name.empty())
      draws.padding = static_cast<Padding>(std::find(kPaddings.begin(), kPaddings.end(), padding_name) - kPaddings.begin());
    const auto [images, labels] = augment_copies(pipeline, draws, sample, count, device);
    const auto theta = pipeline.warps() ? pipeline.warp(draws, h, w, at::kCPU).theta.to(at::kDouble).contiguous()
                                        : torch::eye(2, 3, torch::kDouble).expand({count, 2, 3}).contiguous();

    // PNG holds 8 and 16 bit; other pixel types keep their type in NIfTI.
    const auto pixel_dtype = sample.image.pixels.scalar_type();
    const std::string image_ext = (pixel_dtype == at::kByte || pixel_dtype == at::kInt) ? ".png" : ".nii.gz";
    Inputs inputs;
    add_data_set_input(inputs, data_path);
    for (const auto& path : {image_path, labels_path}) inputs.add(path);
    const OutputFolder folder(out_dir, inputs, overwrite ? Existing::overwrite : Existing::refuse, "pass --overwrite to replace them");
    std::vector<std::string> names;
    std::vector<fs::path> planned{folder.file("montage.png"), folder.file("augment.json")};
    for (int64_t k = 0; k < count; ++k) {
      std::ostringstream name;
      name << case_id << "_aug" << std::setw(count >= 100 ? 3 : 2) << std::setfill('0') << (k + 1);
      names.push_back(name.str());
      planned.push_back(folder.file("images/" + name.str() + image_ext));
      planned.push_back(folder.file("labels/" + name.str() + ".png"));
    }
    folder.check(planned);
    folder.create({"images", "labels"});
    std::vector<viz::Picture> tiles{viz::render_overlay(sample.image, sample.labels.pixels, sample.classes, 0.45, case_id + " (original)")};
    Recipe shown;
    shown.augmentation = strengths;
    nlohmann::json record = {{"source", sample.source}, {"case", case_id}, {"seed", seed}, {"recipe", recipe_name},
                             {"augmentation", nlohmann::json::parse(recipe_to_json(shown))["augmentation"]},
                             {"padding", kPaddings[static_cast<size_t>(draws.padding)]}, {"count", count},
                             {"samples", nlohmann::json::array()}};
    // The samples, the montage and the record are one set (seg::FileSet): a file of it that
    // cannot be written takes the others this run added with it, and the folders it made go too.
    FileSet files;
    for (int64_t k = 0; k < count; ++k) {
      const auto i = static_cast<size_t>(k);
      Image image = sample.image, label_map = sample.labels;
      image.pixels = to_pixel_type(images[k], pixel_dtype).contiguous();
      label_map.pixels = labels[k].contiguous();
      files.write(planned[2 + 2 * i], [&] { io::write_image(planned[2 + 2 * i], image); });
      files.write(planned[3 + 2 * i], [&] { io::write_label_map(planned[3 + 2 * i], label_map); });
      tiles.push_back(viz::render_overlay(image, label_map.pixels, sample.classes, 0.45, names[i]));
      const auto t = theta[k];
      record["samples"].push_back({{"name", names[i]}, {"image", planned[2 + 2 * i].string()}, {"labels", planned[3 + 2 * i].string()},
                                   {"theta", {{t[0][0].item<double>(), t[0][1].item<double>(), t[0][2].item<double>()},
                                              {t[1][0].item<double>(), t[1][1].item<double>(), t[1][2].item<double>()}}}});
    }
    files.write(planned[0], [&] { viz::write_png(planned[0], viz::montage(tiles, columns)); });
    files.write(planned[1], [&] { write_file_atomically(planned[1], record.dump(2) + "\n"); });
    files.commit();
    out << "seed " << seed << ", augmentation " << strengths_text(strengths) << ", device " << device.str() << ": " << count
        << " augmented sample(s) of " << case_id << " in " << out_dir << " (images/, labels/, montage.png, augment.json)\n";
    return kOk;
  });
}

}  // namespace seg::tools
