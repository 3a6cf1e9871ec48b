// seg-augment: writes random affine augmentations of one case (theta = I + s * randn, the
// notebook's training augmentation) and a montage of them with label overlays, to look at
// what training sees.
#include <seg/augment.h>
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <seg/output.h>
#include <seg/predict.h>
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

}  // namespace

int augment(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("augment", err, [&]() -> int {
    CLI::App app{
        "Writes K random affine augmentations of one case, as training makes them: theta =\n"
        "I + scale * randn (2x3, per sample), sampled with align_corners=false, bilinear for\n"
        "the image and nearest for the labels (out-of-image pixels become 0). Output: OUT/\n"
        "images/<case>_augNN.png, OUT/labels/<case>_augNN.png, OUT/montage.png (the original\n"
        "and each sample with label overlays) and OUT/augment.json (seed and matrices).\n"
        "The same --seed gives the same samples, on CPU and CUDA.",
        "seg-augment"};
    add_max_pixels_option(app);
    std::string data_path, case_id, image_path, labels_path, out_dir, device_name = "cpu";
    int64_t count = 8;
    int columns = 4;
    double scale = 0.1, elastic = 0.0, zoom = 0.0, rotation = 0.0, texture = 0.0, processing = 0.0, opacity = 0.0, devices = 0.0;
    std::string padding_name = "zeros";
    uint64_t seed = 0;
    int threads = 0;
    app.add_option("--data", data_path, "data set: folder with dataset.json, or a tensor pack");
    app.add_option("--case", case_id, "the case to augment (with --data)");
    app.add_option("--image", image_path, "an image file instead of --data/--case");
    app.add_option("--labels", labels_path, "its label map (with --image)");
    app.add_option("--count,-k", count, "how many augmented samples")->capture_default_str();
    auto* seed_option = app.add_option("--seed", seed, "random seed (default: a fresh one, printed)");
    app.add_option("--scale", scale, "s in theta = I + s * randn")->capture_default_str();
    app.add_option("--elastic", elastic, "small elastic warp on top (as seg-train --augment-elastic; 0: off)")
        ->capture_default_str();
    app.add_option("--zoom", zoom, "field of view wider or narrower by up to 1 + zoom (as seg-train --augment-zoom; 0: off)")
        ->capture_default_str();
    app.add_option("--rotation", rotation, "turned by up to this many degrees either way (as seg-train --augment-rotation; 0: off)")
        ->capture_default_str();
    app.add_option("--padding", padding_name,
                   "what a warp shows beyond the image: zeros, border (edge repeated) or minimum (training with "
                   "--augment-zoom or --augment-rotation draws one of the three per step)")
        ->check(CLI::IsMember({"zeros", "border", "minimum"}))
        ->capture_default_str();
    app.add_option("--texture", texture, "random blur, sharpening and noise (as seg-train --augment-texture; 0: off)")
        ->capture_default_str();
    app.add_option("--processing", processing,
                   "random histogram equalisation and local contrast (as seg-train --augment-processing; 0: off)")
        ->capture_default_str();
    app.add_option("--opacity", opacity, "random soft opacities, as of diseased lungs (as seg-train --augment-opacity; 0: off)")
        ->capture_default_str();
    app.add_option("--devices", devices,
                   "probability of radiopaque tubes, wires and a pacemaker (as seg-train --augment-devices; 0: off)")
        ->capture_default_str();
    app.add_option("--out,-o", out_dir, "output folder (created)")->required();
    app.add_option("--columns", columns, "montage tiles per row")->capture_default_str();
    app.add_option("--device", device_name, "cpu, cuda, cuda:N or auto")->capture_default_str();
    app.add_option("--threads", threads, "LibTorch threads (default: all cores)");
    bool overwrite = false;
    app.add_flag("--overwrite", overwrite, "replace outputs that exist already in OUT");
    if (!parse(app, args, out)) return kOk;
    set_threads(threads);
    if (count < 1 || count > 999) throw UsageError("--count " + std::to_string(count) + ": give 1..999 samples");
    if (columns < 1) throw UsageError("--columns must be at least 1");
    if (!(scale >= 0)) throw UsageError("--scale must be 0 or more (0.1 is the notebook's)");
    if (!(elastic >= 0)) throw UsageError("--elastic must be 0 or more (0.02 is a small warp)");
    if (!(zoom >= 0)) throw UsageError("--zoom must be 0 or more (0.5: the chest at 0.67 to 1.5 times its size)");
    if (!(rotation >= 0 && rotation <= 180)) throw UsageError("--rotation is an angle in degrees: give 0 to 180");
    if (!(texture >= 0)) throw UsageError("--texture must be 0 or more (1: up to 250 % sharpening)");
    if (!(processing >= 0)) throw UsageError("--processing must be 0 or more (1: up to fully equalised)");
    if (!(opacity >= 0)) throw UsageError("--opacity must be 0 or more (1: blobs up to soft-tissue grey)");
    if (!(devices >= 0 && devices <= 1)) throw UsageError("--devices is a probability: give 0 to 1");
    const Padding padding = padding_name == "border"    ? Padding::border
                            : padding_name == "minimum" ? Padding::minimum
                                                        : Padding::zeros;
    const bool from_data = !data_path.empty() || !case_id.empty();
    const bool from_files = !image_path.empty() || !labels_path.empty();
    if (from_data == from_files)
      throw UsageError("give either --data DIR --case ID, or --image FILE --labels FILE");
    if (from_data && (data_path.empty() || case_id.empty())) throw UsageError("--data and --case go together");
    if (from_files && (image_path.empty() || labels_path.empty())) throw UsageError("--image and --labels go together");
    const at::Device device = parse_device(device_name);
    if (seed_option->count() == 0) seed = std::random_device{}();

    Sample sample;
    if (from_data) {
      sample = case_from_data(data_path, case_id);
    } else {
      sample.image = io::read_image(image_path);
      sample.labels = io::read_label_map(labels_path);
      case_id = io::case_id_of(image_path);
      check_name(case_id, "case ID", image_path);
      sample.source = image_path;
    }
    if (sample.image.channels() != 1)
      throw Error(sample.source, "is a colour image; augmentation takes one channel (convert it to grey)");
    if (sample.image.pixels.sizes() != sample.labels.pixels.sizes())
      throw Error(sample.source, "image and label map differ in size; resample one to the other");
    if (sample.classes.entries.empty())
      sample.classes = ClassTable::numbered(sample.labels.pixels.max().item<int>() + 1);

    // One batch of K copies, one theta each, drawn from the one seeded generator.
    const int64_t h = sample.image.height(), w = sample.image.width();
    auto images = sample.image.pixels.to(at::kFloat).view({1, 1, h, w}).expand({count, 1, h, w}).to(device);
    auto labels = sample.labels.pixels.view({1, h, w}).expand({count, h, w}).to(device);
    at::Generator gen = make_seeded_generator(seed);
    const auto theta = random_affine_theta(count, scale, gen, device, zoom, rotation,
                                           static_cast<double>(w) / static_cast<double>(h));
    at::Tensor displacement;
    if (elastic > 0) displacement = elastic_displacement(random_elastic_draws(count, elastic, gen), h, w, device);
    auto [warped_images, warped_labels] = apply_affine(images, labels, theta, displacement, padding);
    // (these three work on any grey scale: no standardising needed)
    if (opacity > 0) warped_images = apply_opacity(warped_images, random_opacity_draws(count, opacity, gen));
    if (devices > 0) warped_images = apply_devices(warped_images, random_device_draws(count, devices, gen));
    if (processing > 0) warped_images = apply_processing(warped_images, random_processing_draws(count, w, processing, gen));
    if (texture > 0) {
      // Training applies it to standardised images; here each sample is standardised for it
      // and brought back to its own grey scale.
      const auto mean = warped_images.mean({1, 2, 3}, true);
      const auto deviation = warped_images.std({1, 2, 3}, true, true).clamp_min(1e-6);
      warped_images = apply_texture((warped_images - mean) / deviation,
                                    random_texture_draws(count, h, w, texture, gen)) * deviation + mean;
    }
    warped_images = warped_images.squeeze(1).cpu();
    warped_labels = warped_labels.cpu();

    // PNG holds 8 and 16 bit; other pixel types keep their type in NIfTI.
    const auto pixel_dtype = sample.image.pixels.scalar_type();
    const std::string image_ext = (pixel_dtype == at::kByte || pixel_dtype == at::kInt) ? ".png" : ".nii.gz";
    Inputs inputs;
    for (const auto& path : {data_path, image_path, labels_path}) inputs.add(path);
    const OutputFolder folder(out_dir, inputs, overwrite ? Existing::overwrite : Existing::refuse,
                              "pass --overwrite to replace them");
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
    std::vector<viz::Picture> tiles{viz::render_overlay(sample.image, sample.labels.pixels, sample.classes, 0.45,
                                                        case_id + " (original)")};
    nlohmann::json record = {{"source", sample.source}, {"case", case_id}, {"seed", seed},
                             {"scale", scale}, {"elastic", elastic}, {"zoom", zoom}, {"rotation", rotation}, {"padding", padding_name}, {"texture", texture}, {"processing", processing}, {"opacity", opacity}, {"devices", devices}, {"count", count}, {"samples", nlohmann::json::array()}};
    const auto theta_cpu = theta.cpu().to(at::kDouble).contiguous();
    for (int64_t k = 0; k < count; ++k) {
      const std::string& name = names[static_cast<size_t>(k)];
      Image image = sample.image;
      image.pixels = to_pixel_type(warped_images[k], pixel_dtype).contiguous();
      Image label_map = sample.labels;
      label_map.pixels = warped_labels[k].contiguous();
      const fs::path& image_file = planned[static_cast<size_t>(2 + 2 * k)];
      const fs::path& labels_file = planned[static_cast<size_t>(3 + 2 * k)];
      io::write_image(image_file, image);
      io::write_label_map(labels_file, label_map);
      tiles.push_back(viz::render_overlay(image, label_map.pixels, sample.classes, 0.45, name));
      const auto t = theta_cpu[k];
      record["samples"].push_back({{"name", name},
                                   {"image", image_file.string()},
                                   {"labels", labels_file.string()},
                                   {"theta", {{t[0][0].item<double>(), t[0][1].item<double>(), t[0][2].item<double>()},
                                              {t[1][0].item<double>(), t[1][1].item<double>(), t[1][2].item<double>()}}}});
    }
    viz::write_png(planned[0], viz::montage(tiles, columns));
    write_file_atomically(planned[1], record.dump(2) + "\n");
    out << "seed " << seed << ", scale " << scale << (elastic > 0 ? ", elastic " + std::to_string(elastic) : std::string())
        << (zoom > 0 ? ", zoom " + std::to_string(zoom) : std::string())
        << (rotation > 0 ? ", rotation " + std::to_string(rotation) : std::string())
        << (texture > 0 ? ", texture " + std::to_string(texture) : std::string())
        << (processing > 0 ? ", processing " + std::to_string(processing) : std::string())
        << (opacity > 0 ? ", opacity " + std::to_string(opacity) : std::string())
        << (devices > 0 ? ", devices " + std::to_string(devices) : std::string()) << ", device " << device.str() << ": " << count
        << " augmented sample(s) of " << case_id << " in " << out_dir << " (images/, labels/, montage.png, augment.json)\n";
    return kOk;
  });
}

}  // namespace seg::tools
