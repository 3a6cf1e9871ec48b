// seg-segment: apply a trained model to images and write label maps (PNG, NIfTI or, for DICOM
// films, DICOM SEG), overlays, per-structure masks and probabilities.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/dicom_seg.h>
#include <seg/io/film_inputs.h>
#include <seg/io/image_header.h>
#include <seg/io/image_io.h>
#include <seg/intensity_range.h>
#include <seg/model_file.h>
#include <seg/model_search.h>
#include <seg/output.h>
#include <seg/io/quality_report.h>
#include <seg/quality.h>
#include <seg/segmenter.h>
#include <seg/viz/film_outputs.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <new>
#include <optional>

#include "common.h"
#include "support_data.h"
#include "tools.h"

namespace seg::tools {
namespace fs = std::filesystem;

namespace {

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
  const int64_t shown = std::max<int64_t>(n, 1);
  if (n < 1 || k >= n)
    throw UsageError("--shard " + text + ": K counts from 0 and must be below N (0/" + std::to_string(shown) + " .. " +
                     std::to_string(shown - 1) + "/" + std::to_string(shown) + ")");
  return {k, n};
}

// --format dcm answers DICOM films only: each label map references its film.
void require_segmentation_source(const io::FilmInput& film) {
  if (film.path.empty() || io::read_image_header(film.path).format != "DICOM")
    throw UsageError("--format dcm writes a DICOM SEG for each DICOM film, and " + film.source() +
                     " is not one; give DICOM films only, or use --format png or nii.gz");
  io::check_segmentation_source(film.path);
}

}  // namespace

int segment(const Args& args, std::ostream& out, std::ostream& err) {
  return run_tool("segment", err, [&]() -> int {
    CLI::App app{"Segment images with a trained model: label maps named by case ID, as PNG, NIfTI or DICOM SEG.",
                 "seg-segment"};
    add_max_pixels_option(app);
    std::string out_dir, data_path, split = "test", device_name = "auto", list_file;
    std::vector<std::string> inputs, model_paths;
    std::string resize = "pad", shard_text;
    viz::FilmOutputRequest request;
    int threads = 0;
    int64_t batch = 8;
    bool to_gray = false, tta = false, largest_component = false, holes = false, no_postprocessing = false,
         no_reframe = false, whole = false, overwrite = false, skip_existing = false, keep_going = false,
         qc = false;
    app.add_option("inputs", inputs, "image files or folders; - reads paths from standard input");
    app.add_option("--model", model_paths,
                   "model file, training run folder or model name (seg-inspect --models); repeat it for an "
                   "ensemble (the mean of the models' probabilities; they may differ in network and input size but "
                   "not in classes)")
        ->required()
        ->allow_extra_args(false);
    app.add_option("-o,--out", out_dir, "output folder")->required();
    app.add_option("--data", data_path, "segment a data set's split instead (folder or tensor pack)");
    app.add_option("--split", split, "split of --data")->capture_default_str();
    app.add_option("--list", list_file, "a file with one input path per line");
    app.add_option("--format", request.format,
                   "label map format: png, nii, nii.gz or dcm (DICOM films only: a DICOM SEG for each, referencing "
                   "its film, for a PACS)")
        ->check(CLI::IsMember({"png", "nii", "nii.gz", "dcm"}))
        ->capture_default_str();
    app.add_flag("--overlay", request.overlay, "also write OUT/overlays/<case>.png");
    app.add_flag("--probabilities", request.probabilities, "also write OUT/probabilities/<case>_<class>.nii.gz (float)");
    app.add_flag("--gray", to_gray, "convert colour inputs to grey instead of refusing them");
    app.add_option("--batch", batch,
                   "images per forward pass, at most (on the CPU each of the --threads workers makes its own passes, "
                   "of at most 128 MiB of films, and the network takes their images one at a time)")
        ->capture_default_str();
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
    app.add_flag("--masks", request.masks,
                 "also write OUT/masks/<case>_<class>.<format>: one mask per structure (PNG 0/255, NIfTI 0/1; "
                 "nii.gz with --format dcm), each "
                 "whole, overlapping where the structures do (the lungs behind the clavicles, and the clavicles "
                 "whole too), whatever --whole does to the label map");
    app.add_flag("--qc", qc,
                 "quality control: also write OUT/qc.csv and OUT/qc.json, each film's estimated Dice per structure, "
                 "qc_score and flag (1: review it), from the estimator the model records (seg-evaluate --fit-qc "
                 "fits one); one more pass of the network a film");
    app.add_flag("--overwrite", overwrite, "replace outputs that exist already (by default the run refuses them)");
    app.add_flag("--skip-existing", skip_existing,
                 "keep the films whose label map exists already and segment the rest (resumes an interrupted cohort "
                 "run; a film's label map is written last)");
    app.add_flag("--keep-going", keep_going,
                 "when a film cannot be read, go on with the others and list the failures at the end (exit 1)");
    app.add_option("--device", device_name, "cpu, cuda, cuda:N or auto")->capture_default_str();
    app.add_option("--threads", threads, "CPU threads (default: the machine's cores)");
    app.add_option("--shard", shard_text,
                   "K/N: segment only every N-th input from the K-th (K = 0..N-1), so N processes or machines "
                   "split one cohort without collisions");
    if (!parse(app, args, out)) return kOk;
    const auto shard = parse_shard(shard_text);
    if (batch < 1) throw UsageError("--batch must be at least 1");
    if (overwrite && skip_existing) throw UsageError("--overwrite and --skip-existing exclude each other; give one");
    if (qc && (skip_existing || shard.second > 1))
      throw UsageError("--qc writes one qc.csv for all the films of a run; it cannot be combined with --skip-existing or --shard");
    set_threads(threads);
    const at::Device device = parse_device(device_name);

    // Gather and check every input before writing anything.
    std::vector<io::FilmInput> items;
    Inputs read_paths;
    if (!data_path.empty()) {
      try {
        items = io::data_set_films(data_path, split);
      } catch (const UnknownSplit& e) {
        throw Error(std::string(e.what()) + "; choose one with --split");
      }
      add_data_set_input(read_paths, data_path);
    }
    for (const auto& input : inputs) {
      if (input == "-") {
        for (std::string line; std::getline(std::cin, line);)
          if (!line.empty()) io::add_films(items, line);
      } else {
        io::add_films(items, input);
        read_paths.add(input);
      }
    }
    if (!list_file.empty()) {
      std::istringstream lines(read_file(list_file));
      for (std::string line; std::getline(lines, line);)
        if (!line.empty()) io::add_films(items, line);
      read_paths.add(list_file);
    }
    if (items.empty()) throw UsageError("nothing to segment: give image files, folders, -, --list or --data");
    io::check_case_ids(items);
    for (const auto& item : items) read_paths.add(item.path);
    // Every shard sees the same list (collisions are checked on all of it) and keeps its share.
    if (shard.second > 1) items = io::shard_of(items, shard.first, shard.second);
    // Every film's header before the first output: a file that is unreadable, cut short, too
    // large, or in colour without --gray stops the run here (or, with --keep-going, is listed
    // at the end).
    std::vector<std::string> failures;
    const auto colour_refused = [](const io::FilmInput& film) {
      return Error(film.source(), "is a colour image; pass --gray to convert it to grey");
    };
    {
      std::vector<io::FilmInput> readable;
      for (auto& item : items) {
        try {
          if (!item.path.empty() && io::read_image_header(item.path).channels >= 3 && !to_gray) throw colour_refused(item);
          if (request.format == "dcm") require_segmentation_source(item);
          readable.push_back(std::move(item));
        } catch (const Error& e) {
          if (!keep_going) throw Error(std::string(e.what()) + " (nothing written; --keep-going segments the other films)");
          failures.push_back(e.what());
        }
      }
      items = std::move(readable);
    }

    std::vector<Model> models;
    for (const auto& path : model_paths) {
      const fs::path file = find_model(path);
      models.push_back(load_model(file));
      read_paths.add(file);
      if (fs::is_directory(file)) read_paths.add(file / "model.pth");
    }
    // The quality estimator: the first model's (an ensemble's members share the class table).
    const auto quality = models.front().info.quality;
    const std::optional<IntensityRange> trained_intensity = models.front().info.training_intensity;
    if (qc && !quality)
      throw Error(model_paths.front(), "has no quality record, so --qc cannot estimate how good its masks are; fit one "
                                       "with seg-evaluate --fit-qc MODEL --data DATA -o MODEL_QC.pth");
    SegmenterOptions options;
    options.predict = {resize == "pad", tta, !no_reframe};
    std::vector<std::string> asked;
    if (largest_component) asked.push_back("largest-component");
    if (holes) asked.push_back("fill-holes");
    options.postprocessing = clean_up_steps(models, !no_postprocessing, asked);
    options.whole = whole;
    options.masks = request.masks;
    options.probabilities = request.probabilities;
    const TrainingIntensityCheck intensity_check(models);
    const Segmenter segmenter(std::move(models), options, device, model_paths.front());
    request.algorithm.version = SEG_VERSION;
    for (const auto& path : model_paths) {
      const fs::path file = find_model(path).lexically_normal();  // a model file, or a training run's folder
      const std::string name = (file.has_filename() ? file : file.parent_path()).filename().string();
      request.algorithm.model += (request.algorithm.model.empty() ? "" : "+") + name;
    }
    if (request.masks || request.probabilities)
      for (const auto& [name, value] : segmenter.classes().entries)
        check_name(name, "class name", model_paths.front());

    // The outputs: none may be an input, leave the folder, or exist unless asked for.
    const OutputFolder folder(out_dir, read_paths, overwrite ? Existing::overwrite : skip_existing ? Existing::skip : Existing::refuse,
                              "pass --overwrite to replace them, or --skip-existing to keep them and segment the rest");
    std::vector<viz::FilmOutputs> planned;
    std::vector<fs::path> all_outputs;
    const fs::path qc_csv = qc ? folder.file("qc.csv") : fs::path(), qc_json = qc ? folder.file("qc.json") : fs::path();
    if (qc) folder.check({qc_csv, qc_json});
    std::optional<io::QualityTable> qc_table;
    if (qc) qc_table = io::quality_table(*quality, segmenter.classes());
    for (const auto& item : items) {
      planned.push_back(viz::plan_film_outputs(folder, item.case_id, item.path, segmenter.classes(), request));
      for (const auto& file : planned.back().all()) all_outputs.push_back(file);
    }
    const auto exists = folder.check(all_outputs);
    size_t skipped = 0;
    if (skip_existing) {
      std::vector<io::FilmInput> todo_items;
      std::vector<viz::FilmOutputs> todo_planned;
      for (size_t i = 0, at = 0; i < items.size(); at += planned[i].all().size(), ++i) {
        const bool done = exists[at + planned[i].all().size() - 1];  // the label map, written last
        if (done) {
          ++skipped;
          continue;
        }
        todo_items.push_back(items[i]);
        todo_planned.push_back(planned[i]);
      }
      items = std::move(todo_items);
      planned = std::move(todo_planned);
    }
    folder.create(viz::film_output_subfolders(request));

    const bool terminal = is_terminal(err);
    const auto start = std::chrono::steady_clock::now();
    size_t done = 0;
    int64_t reframed = 0;
    const io::ReadOptions read_options{to_gray};
    // A film that cannot be read, without --keep-going: its message once the films before it are written.
    struct Unreadable : Error {
      using Error::Error;
    };
    std::vector<std::string> unread(items.size());  // --keep-going: why each film could not be read
    // Each film's intensity warning; the first in input order is printed when its film is written.
    std::vector<std::string> intensity_warnings(items.size());
    bool intensity_warned = false;
    std::vector<std::vector<double>> features(qc_table ? items.size() : 0);  // --qc: each film's, from its worker
    auto analyse = [&](const std::vector<size_t>& indices, const std::vector<at::Tensor>& films,
                       const std::vector<FilmPrediction>& predictions) {
      std::vector<at::Tensor> pixels;
      for (const auto& film : films) pixels.push_back(film.to(torch::kFloat));
      auto batch_features = film_quality_features(segmenter, pixels, predictions, quality->label_statistics, trained_intensity);
      for (size_t i = 0; i < indices.size(); ++i) features[indices[i]] = std::move(batch_features[i]);
    };
    // Reads one film on a worker thread; nothing when it cannot be read and --keep-going says go on.
    auto read_item = [&](size_t index) -> std::optional<Image> {
      const auto& item = items[index];
      std::string why;
      try {
        Image image = item.read(read_options);
        if (image.channels() != 1) throw colour_refused(item);  // a header that said otherwise
        intensity_warnings[index] = intensity_check.film(image.pixels, item.source());
        return image;
      } catch (const Error& e) {
        why = e.what();
      } catch (const std::bad_alloc&) {
        why = item.source() + ": ran out of memory while it was read; give fewer --threads, or a smaller "
                              "--max-pixels to refuse films this large";
      }
      if (!keep_going) throw Unreadable(why);
      unread[index] = why;
      return std::nullopt;
    };
    auto write_item = [&](size_t index, const Image& image, const Segmentation& result) {
      try {
        viz::write_film_outputs(segmenter, result, 0, image, items[index].case_id, planned[index], request);
      } catch (const Error& e) {
        throw Error(std::string(e.what()) + " (" + std::to_string(done) + " of " + std::to_string(items.size()) +
                    " films written whole before it)");
      }
      if (qc_table) io::add_estimate(*qc_table, items[index].case_id, estimate_quality(*quality, features[index]), features[index]);
      if (!intensity_warned && !intensity_warnings[index].empty()) {
        err << (terminal ? "\r\033[K" : "") << "seg-segment: warning: " << intensity_warnings[index] << "\n";
        intensity_warned = true;
      }
      reframed += result.reframed;
      ++done;
      if (terminal) err << "\rsegmented " << done << "/" << items.size() << std::flush;
    };
    try {
      segmenter.stream(items.size(), read_item, write_item, {torch::get_num_threads(), batch, request.overlay},
                       qc_table ? FilmAnalysis(analyse) : FilmAnalysis());
    } catch (const Unreadable& e) {
      throw Error(std::string(e.what()) + " (" + std::to_string(done) + " of " + std::to_string(items.size()) +
                  " films segmented before it, their outputs whole; --keep-going goes on past such films)");
    } catch (const FilmSegmentationError& e) {
      // LibTorch's message carries its C++ backtrace on the lines after the first.
      const std::string why = e.what();
      throw Error(items[e.index].source(), "could not be segmented: " + why.substr(0, why.find('\n')) + " (" +
                                               std::to_string(done) + " of " + std::to_string(items.size()) +
                                               " films segmented before it, their outputs whole; if memory ran out, "
                                               "give fewer --threads or a smaller --batch)");
    }
    for (const auto& why : unread)
      if (!why.empty()) failures.push_back(why);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (terminal) err << "\r\033[K";
    const auto& steps = segmenter.options().postprocessing;
    out << done << " label map" << (done == 1 ? "" : "s") << " written to " << out_dir << " (" << std::fixed
        << std::setprecision(1) << static_cast<double>(done) / std::max(seconds, 1e-9) << " images/s; "
        << (skipped ? std::to_string(skipped) + " skipped, their label maps exist; " : "")
        << (segmenter.options().predict.reframe ? std::to_string(reframed) + " reframed; " : "")
        << (whole ? "structures whole; " : "")
        << (steps.empty() ? "no post-processing" : "post-processing: " + join(steps, ", ")) << ")\n";
    if (qc_table) {
      write_file_atomically(qc_csv, io::quality_csv(*qc_table));
      write_file_atomically(qc_json, io::quality_json(*qc_table));
      out << io::quality_summary(*qc_table) << " (" << qc_csv.string() << ")\n";
    }
    if (failures.empty()) return kOk;
    err << "seg-segment: error: " << failures.size() << " film" << (failures.size() == 1 ? "" : "s")
        << " could not be read:\n";
    for (const auto& failure : failures) err << "  " << failure << "\n";
    return kBadInput;
  });
}

}  // namespace seg::tools
