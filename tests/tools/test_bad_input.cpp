// Bad input for every tool: each case must give one line "seg-<tool>: error: ..." naming the
// file (or option) and the problem, exit code 1 (bad input) or 2 (usage), and write nothing.
#include <seg/dataset.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/models.h>
#include <seg/viz/overlay.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <limits>
#include <iostream>
#include <map>
#include <memory>

#include <unistd.h>

#include "fixtures.h"
#include "test_support.h"
#include "tool_run.h"
#include "tools.h"

namespace fs = std::filesystem;
using seg::testing::contains;
using seg::testing::image_of;
using seg::testing::list_files;
using seg::testing::ScratchDir;
namespace io = seg::io;

namespace {

using ToolFn = int (*)(const seg::tools::Args&, std::ostream&, std::ostream&);

const std::vector<std::pair<std::string, ToolFn>>& all_tools() {
  static const std::vector<std::pair<std::string, ToolFn>> tools = {
      {"convert", seg::tools::convert}, {"inspect", seg::tools::inspect}, {"augment", seg::tools::augment},
      {"weights", seg::tools::weights}, {"train", seg::tools::train},     {"segment", seg::tools::segment},
      {"evaluate", seg::tools::evaluate}};
  return tools;
}

ToolFn tool_named(const std::string& name) {
  for (const auto& [n, f] : all_tools())
    if (n == name) return f;
  throw std::runtime_error("no tool " + name);
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string head_of(const fs::path& path, size_t bytes) {
  std::string all = seg::read_file(path);
  return all.substr(0, std::min(bytes, all.size()));
}

// Everything the cases need, made once: a good data set (4 cases of 16 x 12, classes 0..3),
// its tensor pack, a model for it, and broken variants of each.
class Files {
 public:
  Files() {
    torch::manual_seed(3);
    data_ = seg::testing::random_dataset("good", 4, 16, 12, 4, 3);
    io::write_dataset_folder(data_, dir_ / "set");
    seg::save_tensor_pack(data_, dir_ / "pack.pth");
    model_ = make_model(4);
    seg::save_model(model_, dir_ / "model.pth");
    fs::create_directories(dir_ / "run-without-model");
    fs::create_directories(dir_ / "empty-folder");
    write_bytes(dir_ / "plain.txt", "not a folder\n");
    write_bytes(dir_ / "empty.png", "");
    write_bytes(dir_ / "empty.pth", "");
    write_bytes(dir_ / "corrupt.png", std::string("\x89PNG\r\n\x1a\n", 8) + std::string(200, '\x5a'));
    write_bytes(dir_ / "truncated.png", head_of(dir_ / "set" / "images" / "a.png", 60));
    io::write_image(dir_ / "float.nii.gz", image_of(torch::rand({16, 12}), "float32"));
    write_bytes(dir_ / "truncated.nii.gz", head_of(dir_ / "float.nii.gz", 100));
    auto nan = torch::rand({16, 12});
    nan[3][4].fill_(std::numeric_limits<float>::quiet_NaN());
    // NRRD and MetaImage: NIfTI's reader (nifti1_io) turns non-finite floats into 0 itself.
    io::write_image(dir_ / "nan.nrrd", image_of(nan, "float32"));
    auto inf = torch::rand({16, 12});
    inf[0][0].fill_(std::numeric_limits<float>::infinity());
    io::write_image(dir_ / "inf.mha", image_of(inf, "float32"));
    seg::viz::write_png(dir_ / "colour.png", torch::randint(0, 256, {16, 12, 3}, torch::kByte));
    io::write_image(dir_ / "grey-16x12.png", image_of(torch::randint(0, 256, {16, 12}, torch::kByte), "uint8"));
    io::write_image(dir_ / "big-labels.png", image_of(torch::full({16, 12}, 9, torch::kByte), "uint8"));
    io::write_image(dir_ / "other-size.png", image_of(torch::zeros({10, 10}, torch::kByte), "uint8"));
    write_bytes(dir_ / "corrupt.pth", std::string("PK\x03\x04", 4) + std::string(300, '\x01'));
    write_bytes(dir_ / "truncated-model.pth", head_of(dir_ / "model.pth", 2000));
    write_bytes(dir_ / "truncated-pack.pth", head_of(dir_ / "pack.pth", 1500));
    // A plain dict of tensors is a pickle, but not one of our packs or models.
    seg::save_tensor_pack(data_, dir_ / "pack-copy.pth");
    seg::Model three = make_model(3);
    seg::save_model(three, dir_ / "model-3-classes.pth");
    // Metadata that claims 4 classes over weights of a 3-class network.
    seg::Model lying = make_model(3);
    lying.info = model_.info;
    seg::save_model(lying, dir_ / "model-shape-mismatch.pth");

    // Broken data set folders, each a copy of the good one with one thing wrong.
    broken_set("set-empty-json", [](const fs::path& d) { write_bytes(d / "dataset.json", ""); });
    broken_set("set-malformed-json", [](const fs::path& d) { write_bytes(d / "dataset.json", "{\"images\": \"images/{case}.png\", "); });
    broken_set("set-json-wrong-types", [](const fs::path& d) {
      write_bytes(d / "dataset.json", R"({"images": 7, "classes": {"bg": 0}, "split": {"train": ["a"]}})");
    });
    broken_set("set-missing-label", [](const fs::path& d) { fs::remove(d / "labels" / "b.png"); });
    broken_set("set-size-mismatch", [&](const fs::path& d) { fs::copy_file(dir_ / "other-size.png", d / "labels" / "b.png", fs::copy_options::overwrite_existing); });
    broken_set("set-label-range", [&](const fs::path& d) { fs::copy_file(dir_ / "big-labels.png", d / "labels" / "c.png", fs::copy_options::overwrite_existing); });
    broken_set("set-image-dir", [](const fs::path& d) {
      fs::remove(d / "images" / "a.png");
      fs::create_directories(d / "images" / "a.png");
    });
    broken_set("set-truncated-image", [&](const fs::path& d) { fs::copy_file(dir_ / "truncated.png", d / "images" / "a.png", fs::copy_options::overwrite_existing); });
    broken_set("set-3-classes", [](const fs::path& d) {
      auto spec = seg::DatasetSpec::read(d / "dataset.json");
      spec.classes = seg::ClassTable::numbered(3);
      seg::write_file_atomically(d / "dataset.json", spec.to_json());
      for (const char* c : {"a", "b", "c", "d"})
        io::write_label_map(d / "labels" / (std::string(c) + ".png"), image_of(torch::randint(0, 3, {16, 12}, torch::kByte), "uint8"));
    });

    // Prediction folders for seg-evaluate: other case IDs, and a label map of another size.
    fs::create_directories(dir_ / "pred-other-ids");
    for (const char* c : {"x", "y"}) fs::copy_file(dir_ / "set" / "labels" / "a.png", dir_ / "pred-other-ids" / (std::string(c) + ".png"));
    fs::create_directories(dir_ / "pred-other-size");
    fs::copy_file(dir_ / "other-size.png", dir_ / "pred-other-size" / "a.png");

    // A finished run folder (for --resume with another data set).
    const auto r = seg::testing::run_tool_in_process(
        seg::tools::train, {"--data", (dir_ / "set").string(), "--epochs", "1", "--batch", "2", "--threads", "1",
                            "--out", (dir_ / "run").string()});
    if (r.code != 0) throw std::runtime_error("cannot make the run folder: " + r.err);
  }

  fs::path operator/(const std::string& name) const { return dir_ / name; }
  const fs::path& root() const { return dir_.path(); }

 private:
  seg::Model make_model(int classes) const {
    seg::Model m;
    m.info.network = {"fcn", 1, classes};
    m.info.classes = seg::ClassTable::numbered(classes);
    m.info.input_size = {16, 12};
    m.info.normalization.mean = 100;
    m.info.normalization.std = 50;
    m.net = seg::make_network(m.info.network);
    return m;
  }

  void broken_set(const std::string& name, const std::function<void(const fs::path&)>& damage) {
    fs::copy(dir_ / "set", dir_ / name, fs::copy_options::recursive);
    damage(dir_ / name);
  }

  ScratchDir dir_{"seg-bad-input"};
  seg::Dataset data_;
  seg::Model model_;
};

struct Case {
  std::string kind;   // which kind of bad input (for the count by kind)
  std::string tool;
  std::function<seg::tools::Args(const Files&, const fs::path& out)> args;
  int code;                             // 1 bad input, 2 usage
  std::vector<std::string> mentions;    // the error line names these (file names, options)
};

// `out` is a fresh folder per case: a case that names an output writes it there, and
// nothing may appear in it when the case fails.
std::vector<Case> cases() {
  auto s = [](const fs::path& p) { return p.string(); };
  std::vector<Case> c;
  // --- missing files and folders
  c.push_back({"missing", "convert", [=](const Files& f, const fs::path& o) { return seg::tools::Args{s(f / "nothing.png"), "-o", s(o / "x.nii.gz")}; }, 1, {"nothing.png"}});
  c.push_back({"missing", "inspect", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "nothing.nii.gz")}; }, 1, {"nothing.nii.gz"}});
  c.push_back({"missing", "augment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--image", s(f / "nothing.png"), "--labels", s(f / "set" / "labels" / "a.png"), "-o", s(o / "aug")}; }, 1, {"nothing.png"}});
  c.push_back({"missing", "weights", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--data", s(f / "no-set")}; }, 1, {"no-set"}});
  c.push_back({"missing", "train", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--data", s(f / "no-set"), "--out", s(o / "run")}; }, 1, {"no-set"}});
  c.push_back({"missing", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "no-model.pth"), s(f / "set" / "images" / "a.png"), "-o", s(o / "seg")}; }, 1, {"no-model.pth"}});
  c.push_back({"missing", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "model.pth"), s(f / "nothing.png"), "-o", s(o / "seg")}; }, 1, {"nothing.png"}});
  c.push_back({"missing", "evaluate", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "nothing.png"), s(f / "set" / "labels" / "a.png")}; }, 1, {"nothing.png"}});
  c.push_back({"missing", "train", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--resume", s(f / "empty-folder")}; }, 1, {"empty-folder"}});
  // --- empty files
  c.push_back({"empty", "inspect", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "empty.png")}; }, 1, {"empty.png"}});
  c.push_back({"empty", "convert", [=](const Files& f, const fs::path& o) { return seg::tools::Args{s(f / "empty.png"), "-o", s(o / "x.png")}; }, 1, {"empty.png"}});
  c.push_back({"empty", "weights", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--data", s(f / "empty.pth")}; }, 1, {"empty.pth"}});
  c.push_back({"empty", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "empty.pth"), s(f / "set" / "images" / "a.png"), "-o", s(o / "seg")}; }, 1, {"empty.pth"}});
  c.push_back({"empty", "train", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--data", s(f / "set-empty-json"), "--out", s(o / "run")}; }, 1, {"dataset.json"}});
  // --- truncated files
  c.push_back({"truncated", "convert", [=](const Files& f, const fs::path& o) { return seg::tools::Args{s(f / "truncated.png"), "-o", s(o / "x.nii.gz")}; }, 1, {"truncated.png"}});
  c.push_back({"truncated", "inspect", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "truncated.nii.gz")}; }, 1, {"truncated.nii.gz"}});
  c.push_back({"truncated", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "truncated-model.pth"), s(f / "set" / "images" / "a.png"), "-o", s(o / "seg")}; }, 1, {"truncated-model.pth"}});
  c.push_back({"truncated", "weights", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--data", s(f / "truncated-pack.pth")}; }, 1, {"truncated-pack.pth"}});
  c.push_back({"truncated", "train", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--data", s(f / "set-truncated-image"), "--out", s(o / "run")}; }, 1, {"a.png"}});
  c.push_back({"truncated", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "model.pth"), s(f / "set" / "images" / "b.png"), s(f / "truncated.png"), "-o", s(o / "seg")}; }, 1, {"truncated.png"}});
  // --- corrupt files
  c.push_back({"corrupt", "inspect", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "corrupt.png")}; }, 1, {"corrupt.png"}});
  c.push_back({"corrupt", "evaluate", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "corrupt.png"), s(f / "set" / "labels" / "a.png")}; }, 1, {"corrupt.png"}});
  c.push_back({"corrupt", "augment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--image", s(f / "corrupt.png"), "--labels", s(f / "set" / "labels" / "a.png"), "-o", s(o / "aug"), "--seed", "1"}; }, 1, {"corrupt.png"}});
  // --- a folder where a file is expected
  c.push_back({"folder-for-file", "inspect", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "set-image-dir" / "images" / "a.png")}; }, 1, {"a.png"}});
  c.push_back({"folder-for-file", "weights", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--data", s(f / "set-image-dir")}; }, 1, {"a.png"}});
  c.push_back({"folder-for-file", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "run-without-model"), s(f / "set" / "images" / "a.png"), "-o", s(o / "seg")}; }, 1, {"run-without-model"}});
  c.push_back({"folder-for-file", "evaluate", [=](const Files& f, const fs::path& o) { return seg::tools::Args{s(f / "set" / "labels" / "a.png"), s(f / "set" / "labels" / "b.png"), "--csv", s(f / "empty-folder")}; }, 1, {"empty-folder"}});
  // --- wrong pixel types
  c.push_back({"pixel-type", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "model.pth"), s(f / "colour.png"), "-o", s(o / "seg")}; }, 1, {"colour.png", "--gray"}});
  // The colour image second in a batch: the error names it, not the batch's first image.
  c.push_back({"pixel-type", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "model.pth"), s(f / "grey-16x12.png"), s(f / "colour.png"), "-o", s(o / "seg")}; }, 1, {"colour.png", "--gray"}});
  c.push_back({"pixel-type", "convert", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--labels", s(f / "float.nii.gz"), "-o", s(o / "l.png")}; }, 1, {"float.nii.gz"}});
  c.push_back({"pixel-type", "convert", [=](const Files& f, const fs::path& o) { return seg::tools::Args{s(f / "float.nii.gz"), "-o", s(o / "x.png")}; }, 1, {"x.png"}});
  c.push_back({"pixel-type", "evaluate", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "float.nii.gz"), s(f / "set" / "labels" / "a.png")}; }, 1, {"float.nii.gz"}});
  // --- image / label size mismatch
  c.push_back({"size-mismatch", "weights", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--data", s(f / "set-size-mismatch")}; }, 1, {"b.png"}});
  c.push_back({"size-mismatch", "train", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--data", s(f / "set-size-mismatch"), "--out", s(o / "run")}; }, 1, {"b.png"}});
  c.push_back({"size-mismatch", "evaluate", [=](const Files& f, const fs::path& o) { return seg::tools::Args{s(f / "pred-other-size"), "--data", s(f / "set"), "--skip-missing", "--csv", s(o / "m.csv")}; }, 1, {"a.png"}});
  c.push_back({"size-mismatch", "inspect", [=](const Files& f, const fs::path& o) { return seg::tools::Args{s(f / "set" / "images" / "a.png"), "--overlay", s(o / "o.png"), "--label-map", s(f / "other-size.png")}; }, 1, {"other-size.png"}});
  // --- label values out of range
  c.push_back({"label-range", "weights", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--data", s(f / "set-label-range")}; }, 1, {"c.png", "9"}});
  c.push_back({"label-range", "train", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--data", s(f / "set-label-range"), "--out", s(o / "run")}; }, 1, {"c.png", "9"}});
  c.push_back({"label-range", "convert", [=](const Files& f, const fs::path& o) { return seg::tools::Args{s(f / "set-label-range"), "-o", s(o / "p.pth")}; }, 1, {"c.png", "9"}});
  // --- NaN or Inf pixels
  c.push_back({"nan-inf", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "model.pth"), s(f / "nan.nrrd"), "-o", s(o / "seg")}; }, 1, {"nan.nrrd", "NaN"}});
  c.push_back({"nan-inf", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "model.pth"), s(f / "inf.mha"), "-o", s(o / "seg")}; }, 1, {"inf.mha", "Inf"}});
  c.push_back({"nan-inf", "augment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--image", s(f / "nan.nrrd"), "--labels", s(f / "set" / "labels" / "a.png"), "-o", s(o / "aug"), "--seed", "1"}; }, 1, {"nan.nrrd", "NaN"}});
  c.push_back({"nan-inf", "evaluate", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "nan.nrrd"), s(f / "set" / "labels" / "a.png")}; }, 1, {"nan.nrrd"}});
  // --- case IDs that do not match between folders
  c.push_back({"case-ids", "evaluate", [=](const Files& f, const fs::path& o) { return seg::tools::Args{s(f / "pred-other-ids"), s(f / "set" / "labels"), "--csv", s(o / "m.csv")}; }, 1, {"pred-other-ids"}});
  c.push_back({"case-ids", "evaluate", [=](const Files& f, const fs::path& o) { return seg::tools::Args{s(f / "pred-other-ids"), "--data", s(f / "set"), "--csv", s(o / "m.csv")}; }, 1, {"pred-other-ids"}});
  c.push_back({"case-ids", "weights", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--data", s(f / "set-missing-label")}; }, 1, {"b.png"}});
  c.push_back({"case-ids", "augment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--data", s(f / "set"), "--case", "zz", "-o", s(o / "aug")}; }, 1, {"zz"}});
  // --- malformed dataset.json
  c.push_back({"dataset-json", "inspect", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "set-malformed-json")}; }, 1, {"dataset.json"}});
  c.push_back({"dataset-json", "weights", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--data", s(f / "set-json-wrong-types")}; }, 1, {"dataset.json"}});
  c.push_back({"dataset-json", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "model.pth"), "--data", s(f / "set-malformed-json"), "-o", s(o / "seg")}; }, 1, {"dataset.json"}});
  c.push_back({"dataset-json", "evaluate", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "set" / "labels"), "--data", s(f / "set-malformed-json")}; }, 1, {"dataset.json"}});
  // --- malformed tensor packs
  c.push_back({"tensor-pack", "weights", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--data", s(f / "corrupt.pth")}; }, 1, {"corrupt.pth"}});
  c.push_back({"tensor-pack", "train", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--data", s(f / "model.pth"), "--out", s(o / "run")}; }, 1, {"model.pth"}});
  c.push_back({"tensor-pack", "inspect", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "truncated-pack.pth")}; }, 1, {"truncated-pack.pth"}});
  c.push_back({"tensor-pack", "convert", [=](const Files& f, const fs::path& o) { return seg::tools::Args{s(f / "corrupt.pth"), "-o", s(o / "set")}; }, 1, {"corrupt.pth"}});
  // --- malformed model files, and a model for another number of classes
  c.push_back({"model-file", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "corrupt.pth"), s(f / "set" / "images" / "a.png"), "-o", s(o / "seg")}; }, 1, {"corrupt.pth"}});
  c.push_back({"model-file", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "pack.pth"), s(f / "set" / "images" / "a.png"), "-o", s(o / "seg")}; }, 1, {"pack.pth", "not a segsuite model"}});
  c.push_back({"model-classes", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "model-shape-mismatch.pth"), s(f / "set" / "images" / "a.png"), "-o", s(o / "seg")}; }, 1, {"model-shape-mismatch.pth", "number of classes"}});
  c.push_back({"model-classes", "train", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--resume", s(f / "run"), "--data", s(f / "set-3-classes"), "--epochs", "2"}; }, 1, {"classes"}});
  // --- outputs that cannot be written
  c.push_back({"unwritable-output", "convert", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "set" / "images" / "a.png"), "-o", s(f / "plain.txt" / "x.nii.gz")}; }, 1, {"plain.txt"}});
  c.push_back({"unwritable-output", "segment", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--model", s(f / "model.pth"), s(f / "set" / "images" / "a.png"), "-o", s(f / "plain.txt")}; }, 1, {"plain.txt"}});
  c.push_back({"unwritable-output", "train", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--data", s(f / "set"), "--epochs", "1", "--out", s(f / "plain.txt" / "run")}; }, 1, {"plain.txt"}});
  c.push_back({"unwritable-output", "augment", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--data", s(f / "set"), "--case", "a", "-o", s(f / "plain.txt")}; }, 1, {"plain.txt"}});
  c.push_back({"unwritable-output", "weights", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--data", s(f / "set"), "--json", s(f / "no-folder" / "w.json")}; }, 1, {"no-folder"}});
  c.push_back({"unwritable-output", "inspect", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "set"), "--overlay", s(f / "plain.txt" / "o.png")}; }, 1, {"plain.txt"}});
  c.push_back({"unwritable-output", "evaluate", [=](const Files& f, const fs::path&) { return seg::tools::Args{s(f / "set" / "labels" / "a.png"), s(f / "set" / "labels" / "b.png"), "--json", s(f / "plain.txt" / "m.json")}; }, 1, {"plain.txt"}});
  // --- unknown options, networks and values: usage errors
  for (const auto& [name, fn] : all_tools())
    c.push_back({"unknown-option", name, [](const Files&, const fs::path&) { return seg::tools::Args{"--no-such-option"}; }, 2, {"--no-such-option"}});
  c.push_back({"unknown-network", "train", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--data", s(f / "set"), "--model", "resnet-9000", "--out", s(o / "run")}; }, 2, {"resnet-9000"}});
  c.push_back({"bad-value", "train", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--data", s(f / "set"), "--epochs", "many", "--out", s(o / "run")}; }, 2, {"--epochs"}});
  c.push_back({"bad-value", "convert", [=](const Files& f, const fs::path& o) { return seg::tools::Args{s(f / "set"), "--size", "0x7", "-o", s(o / "p.pth")}; }, 2, {"--size"}});
  c.push_back({"bad-value", "segment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--model", s(f / "model.pth"), s(f / "set" / "images" / "a.png"), "--format", "gif", "-o", s(o / "seg")}; }, 2, {"--format"}});
  c.push_back({"bad-value", "weights", [=](const Files& f, const fs::path&) { return seg::tools::Args{"--data", s(f / "set"), "--mode", "magic"}; }, 2, {"magic"}});
  c.push_back({"bad-value", "augment", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--data", s(f / "set"), "--case", "a", "--count", "-3", "-o", s(o / "aug")}; }, 2, {"--count"}});
  c.push_back({"bad-value", "train", [=](const Files& f, const fs::path& o) { return seg::tools::Args{"--data", s(f / "set"), "--device", "tpu", "--out", s(o / "run")}; }, 2, {"tpu"}});
  return c;
}

// The test's name: its kind and tool ("Missing_Convert"), numbered when a pair repeats.
std::string case_name(const std::vector<Case>& all, size_t index) {
  auto camel = [](const std::string& text) {
    std::string out;
    bool upper = true;
    for (char c : text) {
      if (c == '-') {
        upper = true;
        continue;
      }
      out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
      upper = false;
    }
    return out;
  };
  const auto& c = all[index];
  std::string name = camel(c.kind) + "_" + camel(c.tool);
  int same = 0, before = 0;
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i].kind == c.kind && all[i].tool == c.tool) {
      ++same;
      if (i < index) ++before;
    }
  return same > 1 ? name + "_" + std::to_string(before + 1) : name;
}

class BadInput : public ::testing::TestWithParam<size_t> {
 protected:
  static void SetUpTestSuite() {
    torch::set_num_threads(1);
    files_ = std::make_unique<Files>();
  }
  static void TearDownTestSuite() { files_.reset(); }
  static std::unique_ptr<Files> files_;
};
std::unique_ptr<Files> BadInput::files_;

}  // namespace

// Each case: one line "seg-<tool>: error: ..." naming what it should, the right exit code,
// nothing written into its output folder, and nothing appearing or vanishing beside the inputs.
TEST_P(BadInput, GivesOneClearLineTheRightCodeAndWritesNothing) {
  const auto all = cases();
  const auto& c = all[GetParam()];
  const auto before = list_files(files_->root());
  ScratchDir out("seg-bad-out");
  const auto args = c.args(*files_, out.path());
  std::string command = "seg-" + c.tool;
  for (const auto& a : args) command += " " + a;
  SCOPED_TRACE(command);
  const auto r = seg::testing::run_tool_in_process(tool_named(c.tool), args);
  EXPECT_EQ(r.code, c.code) << r.err << r.out;
  const std::string prefix = "seg-" + c.tool + ": error: ";
  EXPECT_EQ(r.err.rfind(prefix, 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const auto& m : c.mentions) EXPECT_TRUE(contains(r.err, m)) << "should mention " << m << ": " << r.err;
  EXPECT_EQ(list_files(out.path()), std::vector<std::string>{}) << "written despite the error";
  EXPECT_EQ(list_files(files_->root()), before);
}

INSTANTIATE_TEST_SUITE_P(Tools, BadInput, ::testing::Range<size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) { return case_name(cases(), info.param); });

TEST(BadOutput, UnwritableFolderWhenNotRoot) {
  if (::geteuid() == 0) GTEST_SKIP() << "running as root: permissions do not stop writes";
  ScratchDir tmp;
  io::write_image(tmp / "a.png", image_of(torch::zeros({16, 12}, torch::kByte), "uint8"));
  fs::create_directories(tmp / "ro");
  fs::permissions(tmp / "ro", fs::perms::owner_read | fs::perms::owner_exec);
  const auto r = seg::testing::run_tool_in_process(seg::tools::convert, {(tmp / "a.png").string(), "-o", (tmp / "ro" / "x.nii.gz").string()});
  fs::permissions(tmp / "ro", fs::perms::owner_all);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "x.nii.gz")) << r.err;
  EXPECT_TRUE(list_files(tmp / "ro").empty());
}
