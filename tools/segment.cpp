// seg-segment: apply a trained model to images and write label maps (PNG or NIfTI),
// overlays and probabilities.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/postprocess.h>
#include <seg/predict.h>
#include <seg/viz/overlay.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <optional>

#include "common.h"
#include "support_data.h"
#include "tools.h"

namespace seg::tools {
namespace fs = std::filesystem;

namespace {

// One image to segment: a file, or a row of a data set already in memory.
struct InputItem {
  std::string case_id;
  fs::path path;                    // empty for rows of a tensor pack
  std::optional<Image> in_memory;
};

void add_path(std::vector<InputItem>& items, const fs::path& path) {
  if (fs::is_directory(path)) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(path))
      if (entry.is_regular_file() && seg::io::is_image_path(entry.path())) files.push_back(entry.path());
    if (files.empty()) throw Error(path.string(), "folder holds no image files this tool reads");
    std::sort(files.begin(), files.end());
    for (const auto& f : files) items.push_back({seg::io::case_id_of(f), f, std::nullopt});
    return;
  }
  if (!fs::exists(path)) throw Error(path.string(), "no such file");
  items.push_back({seg::io::case_id_of(path), path, std::nullopt});
}

std::vector<InputItem> data_set_items(const std::string& data_path, const std::string& split) {
  std::vector<InputItem> items;
  const fs::path root = fs::is_directory(data_path) ? fs::path(data_path) : fs::path(data_path).parent_path();
  if (!is_tensor_pack(data_path)) {
    // A folder: segment the image files themselves, so their geometry is kept.
    const auto spec = DatasetSpec::read(fs::is_directory(data_path) ? root / "dataset.json" : fs::path(data_path));
    auto it = spec.splits.find(split);
    if (it == spec.splits.end()) throw Error(data_path, "has no split \"" + split + "\"");
    for (const auto& c : it->second) items.push_back({c, spec.image_path(root, c), std::nullopt});
    return items;
  }
  const Dataset data = load_data(data_path, {std::nullopt, false}).subset(split);
  for (int64_t i = 0; i < data.size(); ++i) {
    Image image;
    image.pixels = data.images[i];
    image.pixel_type = data.images.scalar_type() == torch::kByte ? "uint8" : "float32";
    items.push_back({data.cases[static_cast<size_t>(i)], {}, image});
  }
  return items;
}

// "K/N" -> {K, N} with 0 <= K < N; empty -> {0, 1} (everything).
std::pair<int64_t, int64_t> parse_shard(const std::string& text) {
  if (text.empty()) return {0, 1};
  const auto slash = text.find('/');
  auto whole = [](const std::string& t) {
    return !t.empty() && t.size() < 10 && t.find_first_not_of("0123456789") == std::string::npos;
  };
  if (slash == std::string::npos || !whole(text.substr(0, slash)) || !whole(text.substr(slash + 1)))
    throw UsageError("--shard " + text + ": use K/N, for example 0/4 .. 3/4");
  const int64_t k = std::stoll(text.substr(0, slash)), n = std::stoll(text.substr(slash + 1));
  if (n < 1 || k >= n) throw UsageError("--shard " + text + ": K counts from 0 and must be below N (0/" + std::to_string(std::max<int64_t>(n, 1)) + " .. " + std::to_string(std::max<int64_t>(n, 1) - 1) + "/" + std::to_string(std::max<int64_t>(n, 1)) + ")");
  return {k, n};
}

Image read_input(const InputItem& item, bool to_gray) {
  if (item.in_memory) return *item.in_memory;
  return seg::io::read_image(item.path, {to_gray});
}

}  // namespace

int segment(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("segment", err, [&]() -> int {
    CLI::App app{"Segment images with a trained model: label maps named by case ID, as PNG or NIfTI.", "seg-segment"};
    add_max_pixels_option(app);
    std::string out_dir, data_path, split = "test", format = "png", device_name = "auto", list_file;
    std::vector<std::string> inputs, model_paths;
    std::string resize = "pad", shard_text;
    int threads = 0;
    int64_t batch = 8;
    bool overlay = false, probabilities = false, to_gray = false, tta = false, largest_component = false,
         holes = false, no_postprocessing = false, no_reframe = false,
         whole = false, masks = false;
    app.add_option("inputs", inputs, "image files or folders; - reads paths from standard input");
    app.add_option("--model", model_paths,
                   "model file or training run folder; repeat it for an ensemble (the mean of the models' "
                   "probabilities; they may differ in network and input size but not in classes)")
        ->required()
        ->allow_extra_args(false);
    app.add_option("-o,--out", out_dir, "output folder")->required();
    app.add_option("--data", data_path, "segment a data set's split instead (folder or tensor pack)");
    app.add_option("--split", split, "split of --data")->capture_default_str();
    app.add_option("--list", list_file, "a file with one input path per line");
    app.add_option("--format", format, "label map format: png, nii or nii.gz")->capture_default_str();
    app.add_flag("--overlay", overlay, "also write OUT/overlays/<case>.png");
    app.add_flag("--probabilities", probabilities, "also write OUT/probabilities/<case>_<class>.nii.gz (float)");
    app.add_flag("--gray", to_gray, "convert colour inputs to grey instead of refusing them");
    app.add_option("--batch", batch, "images per forward pass")->capture_default_str();
    app.add_option("--resize", resize,
                   "how an image meets the model's input: pad = scale to fit keeping the aspect ratio and pad "
                   "(edge pixels), stretch = scale each side on its own; identical for images of the input's "
                   "aspect ratio")
        ->check(CLI::IsMember({"pad", "stretch"}))
        ->capture_default_str();
    app.add_flag("--tta", tta,
                 "test-time augmentation: average over 7 warps (scales 0.9, 1.1, shifts of 2 px), never mirrored; "
                 "7x the time");
    app.add_flag("--largest-component", largest_component,
                 "keep each structure's largest connected piece (pieces joined through smaller structures, as the "
                 "lung apex through the clavicle, count as one); other pieces take the next most probable class");
    app.add_flag("--fill-holes", holes, "fill background holes enclosed by one structure");
    app.add_flag("--no-postprocessing", no_postprocessing,
                 "skip the clean-up steps the model recommends (chosen on its validation split at the end of "
                 "training, shown by seg-inspect); --largest-component and --fill-holes still apply");
    app.add_flag("--no-reframe", no_reframe,
                 "segment once; by default, when the model records where the structures sat in its training "
                 "images, a second pass segments the image cut to frame the structures the first pass found "
                 "alike (films with a wider field of view: the chest small or off-centre); up to 2x the time");
    app.add_flag("--whole", whole,
                 "paint the structures the model's training labels drew others over whole again, on top: with the "
                 "shipped JSRT models, each lung with its apex behind the clavicle (the lung fields other lung data "
                 "sets and SCR's own masks draw), the clavicles only outside the lungs; in the label map and overlay "
                 "(--probabilities stay the network's)");
    app.add_flag("--masks", masks,
                 "also write OUT/masks/<case>_<class>.<format>: one mask per structure (PNG 0/255, NIfTI 0/1), each "
                 "whole, overlapping where the structures do (the lungs behind the clavicles, and the clavicles "
                 "whole too), whatever --whole does to the label map");
    app.add_option("--device", device_name, "cpu, cuda, cuda:N or auto")->capture_default_str();
    app.add_option("--threads", threads, "CPU threads (default: the machine's cores)");
    app.add_option("--shard", shard_text,
                   "K/N: segment only every N-th input from the K-th (K = 0..N-1), so N processes or machines "
                   "split one cohort without collisions");
    if (!parse(app, args, out)) return kOk;
    const auto shard = parse_shard(shard_text);
    if (format != "png" && format != "nii" && format != "nii.gz")
      throw UsageError("--format " + format + ": use png, nii or nii.gz");
    if (batch < 1) throw UsageError("--batch must be at least 1");
    set_threads(threads);
    const at::Device device = parse_device(device_name);

    // Gather and check every input before writing anything.
    std::vector<InputItem> items;
    if (!data_path.empty()) items = data_set_items(data_path, split);
    for (const auto& input : inputs) {
      if (input == "-") {
        for (std::string line; std::getline(std::cin, line);)
          if (!line.empty()) add_path(items, line);
      } else {
        add_path(items, input);
      }
    }
    if (!list_file.empty()) {
      std::istringstream lines(read_file(list_file));
      for (std::string line; std::getline(lines, line);)
        if (!line.empty()) add_path(items, line);
    }
    if (items.empty()) throw UsageError("nothing to segment: give image files, folders, -, --list or --data");
    std::map<std::string, std::string> seen;
    for (const auto& item : items) {
      auto [it, fresh] = seen.emplace(item.case_id, item.path.string());
      if (!fresh)
        throw Error(item.path.string(), "has the same case ID \"" + item.case_id + "\" as " + it->second +
                                            "; outputs would collide (rename one)");
    }
    // Every shard sees the same list (collisions are checked on all of it) and keeps its share.
    if (shard.second > 1) {
      std::vector<InputItem> mine;
      for (size_t i = static_cast<size_t>(shard.first); i < items.size(); i += static_cast<size_t>(shard.second))
        mine.push_back(items[i]);
      items = std::move(mine);
    }

    std::vector<Model> models;
    for (const auto& path : model_paths) {
      models.push_back(load_model(path));
      if (models.back().info.classes.entries != models.front().info.classes.entries)
        throw Error(path, "has other classes than " + model_paths.front() +
                              "; an ensemble needs models trained on the same class table");
      models.back().net->to(device);
    }
    const Model& model = models.front();
    if (whole && model.info.overlaps.empty())
      throw Error(model_paths.front(), "does not record which structures its training labels drew over others, so "
                                       "--whole cannot restore them; add them with seg-convert MODEL -o OUT.pth "
                                       "--overlap UNDER:OVER");
    // The model's own clean-up (for an ensemble: the steps every member recommends), plus
    // whatever was asked for.
    std::vector<std::string> steps;
    for (const auto& step : postprocessing_steps()) {
      const bool recommended = !no_postprocessing && std::all_of(models.begin(), models.end(), [&](const Model& m) {
        return std::find(m.info.postprocessing.begin(), m.info.postprocessing.end(), step) != m.info.postprocessing.end();
      });
      if (recommended || (step == "largest-component" && largest_component) || (step == "fill-holes" && holes))
        steps.push_back(step);
    }
    const bool wants_probabilities =
        probabilities || std::find(steps.begin(), steps.end(), "largest-component") != steps.end();
    const bool reframe = !no_reframe && model.info.framing.has_value();
    const PredictOptions predict_options{resize == "pad", tta, reframe};
    ensure_writable_dir(out_dir);
    if (overlay) ensure_writable_dir(fs::path(out_dir) / "overlays");
    if (probabilities) ensure_writable_dir(fs::path(out_dir) / "probabilities");
    if (masks) ensure_writable_dir(fs::path(out_dir) / "masks");
    const int mask_on = format == "png" ? 255 : 1;  // visible in a PNG viewer; a label in NIfTI

    const bool terminal = is_terminal(err);
    const auto start = std::chrono::steady_clock::now();
    size_t done = 0;
    int64_t reframed = 0;  // images that had the second pass
    std::optional<Image> read_ahead;  // the image that ended the previous batch: read once only
    for (size_t first = 0; first < items.size();) {
      // A batch: consecutive images of one size.
      std::vector<Image> images;
      images.push_back(read_ahead ? std::move(*read_ahead) : read_input(items[first], to_gray));
      read_ahead.reset();
      size_t end = first + 1;
      while (end < items.size() && static_cast<int64_t>(images.size()) < batch) {
        Image next = read_input(items[end], to_gray);
        if (next.pixels.sizes() != images.front().pixels.sizes()) {
          read_ahead = std::move(next);
          break;
        }
        images.push_back(std::move(next));
        ++end;
      }
      std::vector<at::Tensor> pixels;
      for (size_t i = 0; i < images.size(); ++i) {
        if (images[i].channels() != 1)
          throw Error(items[first + i].path.string(), "is a colour image; pass --gray to convert it to grey");
        pixels.push_back(images[i].pixels.to(torch::kFloat));
      }
      const auto batch_pixels = torch::stack(pixels);
      at::Tensor labels, probs;
      if (models.size() == 1 && !tta && !reframe) {
        // One model: labels from its logits, as always.
        const auto logits = predict_logits(model, batch_pixels, device, predict_options);
        labels = logits_to_labels(logits, model.info.classes);
        if (wants_probabilities) probs = torch::softmax(logits, 1);
      } else {
        probs = predict_probabilities(models, batch_pixels, device, predict_options, &reframed);
        labels = logits_to_labels(probs, model.info.classes);
      }
      labels = labels.cpu();
      if (probs.defined()) probs = probs.cpu();
      labels = postprocess(labels, steps, model.info.classes, probs);
      // Each structure whole: those drawn over from the restored map, the rest as predicted.
      const at::Tensor restored =
          (whole || masks) && !model.info.overlaps.empty() ? restore_covered(labels, model.info.overlaps) : labels;
      const at::Tensor as_predicted = labels;
      if (whole) labels = restored;
      for (size_t i = 0; i < images.size(); ++i) {
        const auto& item = items[first + i];
        Image label_map{labels[static_cast<int64_t>(i)].contiguous(), images[i].geometry, "uint8"};
        seg::io::write_label_map(fs::path(out_dir) / (item.case_id + "." + format), label_map);
        if (masks)
          for (const auto& [name, value] : model.info.classes.entries) {
            if (value == 0) continue;
            const bool drawn_over = std::any_of(model.info.overlaps.begin(), model.info.overlaps.end(),
                                                [value = value](const Overlap& o) { return o.under == value; });
            const at::Tensor mask = (drawn_over ? restored : as_predicted)[static_cast<int64_t>(i)] == value;
            Image mask_image{(mask.to(torch::kByte) * mask_on).contiguous(), images[i].geometry, "uint8"};
            seg::io::write_label_map(fs::path(out_dir) / "masks" / (item.case_id + "_" + name + "." + format),
                                     mask_image);
          }
        if (overlay)
          seg::viz::write_png(fs::path(out_dir) / "overlays" / (item.case_id + ".png"),
                              seg::viz::render_overlay(images[i], label_map.pixels, model.info.classes, 0.45, item.case_id));
        if (probabilities)
          for (int64_t k = 0; k < probs.size(1); ++k) {
            Image p{probs[static_cast<int64_t>(i)][k].contiguous(), images[i].geometry, "float32"};
            seg::io::write_image(fs::path(out_dir) / "probabilities" /
                                     (item.case_id + "_" + model.info.classes.entries[static_cast<size_t>(k)].first + ".nii.gz"),
                                 p);
          }
      }
      done += images.size();
      first = end;
      if (terminal) err << "\rsegmented " << done << "/" << items.size() << std::flush;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (terminal) err << "\r\033[K";
    out << done << " label map" << (done == 1 ? "" : "s") << " written to " << out_dir << " ("
        << std::fixed << std::setprecision(1) << static_cast<double>(done) / std::max(seconds, 1e-9) << " images/s; "
        << (reframe ? std::to_string(reframed) + " reframed; " : "") << (whole ? "structures whole; " : "") << (steps.empty() ? "no post-processing" : "post-processing: " + join(steps, ", "))
        << ")\n";
    return kOk;
  });
}

}  // namespace seg::tools
