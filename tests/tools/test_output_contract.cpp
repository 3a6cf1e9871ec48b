// The output contract, tried as an attacker would: hostile case IDs, outputs that are inputs,
// existing outputs, a full disk, failures half way through a batch, and signals. Each test
// fails on a tool that breaks the contract.
#include <sys/wait.h>

#include <cstdlib>

#include <seg/dataset.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/models.h>
#include <seg/output.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>

#include "child_process.h"
#include "fixtures.h"
#include "test_support.h"
#include "tool_run.h"
#include "tools.h"

namespace fs = std::filesystem;
namespace io = seg::io;
using seg::testing::contains;
using seg::testing::image_of;
using seg::testing::list_files;
using seg::testing::run_tool_in_process;
using seg::testing::ScratchDir;

namespace {

const fs::path kBin = SEG_BINARY_DIR;

std::string s(const fs::path& p) { return p.string(); }

// Every file under `dir` with its bytes, to show that nothing changed.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& name : list_files(dir)) files[name] = seg::read_file(dir / name);
  return files;
}

// Whether the child stops itself (the SEG_TEST_STOP_BEFORE_RENAME hook) within 30 s.
bool stops_itself(pid_t pid) {
  for (int i = 0; i < 600; ++i) {
    int status = 0;
    if (::waitpid(pid, &status, WUNTRACED | WNOHANG) == pid && WIFSTOPPED(status)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// The child's exit code, or -1 when it has not ended within 20 s (it is killed then).
int exit_within_20s(pid_t pid) {
  int status = 0;
  for (int i = 0; i < 200; ++i) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

bool has_temporaries(const fs::path& dir) {
  for (const auto& name : list_files(dir))
    if (fs::path(name).filename().string().rfind(".segtmp.", 0) == 0) return true;
  return false;
}

// A tiny model and a few films for it, made once per test.
class Contract : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(5);
    torch::set_num_threads(1);
    seg::Model model;
    model.info.network = {"fcn", 1, 3};
    model.info.classes = seg::ClassTable::numbered(3);
    model.info.input_size = {16, 16};
    model.info.normalization = {"dataset", 100, 50};
    model.net = seg::make_network(model.info.network);
    seg::save_model(model, dir_ / "model.pth");
    fs::create_directories(dir_ / "films");
    for (const char* name : {"a", "b", "c"})
      io::write_image(dir_ / "films" / (std::string(name) + ".png"),
                      image_of(torch::randint(0, 256, {16, 16}, torch::kByte), "uint8"));
    data_ = seg::testing::random_dataset("set", 4, 16, 16, 3, 2);
    io::write_dataset_folder(data_, dir_ / "set");
  }

  seg::testing::ToolResult segment(std::vector<std::string> extra) const {
    std::vector<std::string> args{"--model", s(dir_ / "model.pth"), "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_tool_in_process(seg::tools::segment, args);
  }

  // A copy of the data set whose split names `hostile` as a case.
  fs::path hostile_set(const std::string& hostile) const {
    const fs::path set = dir_ / "hostile-set";
    fs::remove_all(set);
    fs::copy(dir_ / "set", set, fs::copy_options::recursive);
    auto json = seg::read_file(set / "dataset.json");
    const auto at = json.find("\"a\"");
    json.replace(at, 3, "\"" + hostile + "\"");
    std::ofstream(set / "dataset.json") << json;
    return set;
  }

  ScratchDir dir_{"seg-contract"};
  seg::Dataset data_;
};

struct HostileCase {
  const char* label;
  std::string id;
};

class HostileCaseId : public Contract, public ::testing::WithParamInterface<HostileCase> {};

// A case ID that walks out of the output folder, is absolute or hides: refused by every tool
// that reads the data set, in one line naming the case, and nothing is written anywhere.
TEST_P(HostileCaseId, IsRefusedWhenTheDataIsReadAndNothingIsWritten) {
  const fs::path set = hostile_set(GetParam().id);
  fs::create_directories(dir_ / "deep" / "er");
  const auto before = snapshot(dir_.path());
  const std::vector<std::pair<std::string, seg::testing::ToolResult>> runs{
      {"segment", segment({"--data", s(set), "--split", "train", "-o", s(dir_ / "deep" / "er" / "out")})},
      {"convert", run_tool_in_process(seg::tools::convert, {s(set), "-o", s(dir_ / "deep" / "er" / "copy")})},
      {"augment", run_tool_in_process(seg::tools::augment, {"--data", s(set), "--case=" + GetParam().id, "-o",
                                                            s(dir_ / "deep" / "er" / "aug"), "--seed", "1"})},
      {"inspect", run_tool_in_process(seg::tools::inspect, {s(set)})}};
  for (const auto& [tool, r] : runs) {
    SCOPED_TRACE(tool);
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_TRUE(contains(r.err, "case ID")) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  EXPECT_EQ(snapshot(dir_.path()), before) << "something was written or changed";
}

INSTANTIATE_TEST_SUITE_P(Contract, HostileCaseId,
                         ::testing::Values(HostileCase{"ParentFolders", "../../x"}, HostileCase{"Absolute", "/tmp/x"},
                                           HostileCase{"IntoTheImages", "../images/b"}, HostileCase{"Hidden", ".x"},
                                           HostileCase{"Option", "--overwrite"}),
                         [](const auto& info) { return std::string(info.param.label); });

TEST_F(Contract, ATensorPackWithAHostileCaseIdIsRefused) {
  // Written past save_tensor_pack's own check, as a crafted file would be.
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("format", std::string("segsuite-pack-1"));
  dict.insert("name", std::string("crafted"));
  dict.insert("images", data_.images);
  dict.insert("labels", data_.labels);
  c10::List<std::string> cases({"../../escape", "b", "c", "d"});
  dict.insert("cases", cases);
  dict.insert("class_names", c10::List<std::string>({"background", "label_1", "label_2"}));
  dict.insert("class_values", c10::List<int64_t>({0, 1, 2}));
  dict.insert("split_names", c10::List<std::string>({"test"}));
  dict.insert("split_test", cases);
  const auto bytes = torch::pickle_save(c10::IValue(dict));
  std::ofstream(dir_ / "crafted.pth", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const auto r = segment({"--data", s(dir_ / "crafted.pth"), "-o", s(dir_ / "out")});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "crafted.pth") && contains(r.err, "case ID")) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  EXPECT_FALSE(fs::exists(dir_ / "escape.png"));
}

TEST_F(Contract, AnInputFileWhoseNameCannotNameAFileIsRefused) {
  io::write_image(dir_ / "films" / "-bad name.png", image_of(torch::zeros({16, 16}, torch::kByte), "uint8"));
  const auto r = segment({s(dir_ / "films"), "-o", s(dir_ / "out")});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "-bad name.png") && contains(r.err, "case ID")) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

TEST_F(Contract, InputsAreNeverWrittenOver) {
  const auto before = snapshot(dir_ / "films");
  auto r = segment({s(dir_ / "films"), "-o", s(dir_ / "films"), "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "is an input of this run")) << r.err;
  r = segment({s(dir_ / "films" / "a.png"), "-o", s(dir_ / "films"), "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "a.png: is an input of this run")) << r.err;
  r = run_tool_in_process(seg::tools::inspect, {s(dir_ / "films" / "a.png"), "--labels", "--overlay", s(dir_ / "films" / "a.png"), "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  r = run_tool_in_process(seg::tools::convert, {s(dir_ / "films" / "a.png"), "-o", s(dir_ / "films" / "a.png"), "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  r = run_tool_in_process(seg::tools::convert, {s(dir_ / "set"), "-o", s(dir_ / "set"), "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  r = run_tool_in_process(seg::tools::convert, {s(dir_ / "model.pth"), "-o", s(dir_ / "model.pth"), "--overwrite", "--half"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(snapshot(dir_ / "films"), before);
}

TEST_F(Contract, ExistingOutputsAreReplacedOnlyWhenAskedAndSkippedOnRequest) {
  ASSERT_EQ(segment({s(dir_ / "films"), "-o", s(dir_ / "out")}).code, 0);
  std::ofstream(dir_ / "out" / "b.png") << "the user's own b";
  fs::remove(dir_ / "out" / "c.png");
  auto r = segment({s(dir_ / "films"), "-o", s(dir_ / "out")});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "exists (and 1 more outputs of this run); pass --overwrite")) << r.err;
  EXPECT_EQ(seg::read_file(dir_ / "out" / "b.png"), "the user's own b");
  EXPECT_FALSE(fs::exists(dir_ / "out" / "c.png")) << "refused before anything was written";
  r = segment({s(dir_ / "films"), "-o", s(dir_ / "out"), "--skip-existing"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "1 label map written")) << r.out;
  EXPECT_TRUE(contains(r.out, "2 skipped")) << r.out;
  EXPECT_EQ(seg::read_file(dir_ / "out" / "b.png"), "the user's own b");
  EXPECT_TRUE(fs::exists(dir_ / "out" / "c.png"));
  ASSERT_EQ(segment({s(dir_ / "films"), "-o", s(dir_ / "out"), "--overwrite"}).code, 0);
  EXPECT_NE(seg::read_file(dir_ / "out" / "b.png"), "the user's own b");
  // A named output file of the other tools, alike.
  std::ofstream(dir_ / "overlay.png") << "keep me";
  r = run_tool_in_process(seg::tools::inspect, {s(dir_ / "set"), "--overlay", s(dir_ / "overlay.png")});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "overlay.png: exists; pass --overwrite")) << r.err;
  EXPECT_EQ(seg::read_file(dir_ / "overlay.png"), "keep me");
  std::ofstream(dir_ / "w.json") << "keep me";
  r = run_tool_in_process(seg::tools::weights, {"--data", s(dir_ / "set"), "--json", s(dir_ / "w.json")});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(seg::read_file(dir_ / "w.json"), "keep me");
}

TEST_F(Contract, ADanglingLinkAsOutputIsNamedAsALink) {
  fs::create_symlink(dir_ / "nowhere.png", dir_ / "link.png");
  const auto r = run_tool_in_process(seg::tools::convert, {s(dir_ / "films" / "a.png"), "-o", s(dir_ / "link.png")});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "link.png: is a symbolic link")) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "nowhere.png"));
}

struct DiskCase {
  const char* label;
  std::vector<std::string> format;  // extra options
  int failing_write;
};

class FullDisk : public Contract, public ::testing::WithParamInterface<DiskCase> {};

// The disk fills up at the n-th file: one line saying so and how far the run got, exit 1, the
// finished outputs whole, no empty or temporary files, nothing the user had replaced.
TEST_P(FullDisk, SegmentStopsWithOneLineAndLeavesOnlyWholeOutputs) {
  std::vector<std::string> args{s(dir_ / "films"), "-o", s(dir_ / "out")};
  args.insert(args.end(), GetParam().format.begin(), GetParam().format.end());
  seg::fail_write_for_testing(GetParam().failing_write);
  const auto r = segment(args);
  seg::fail_write_for_testing(0);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.err, "no space left on device")) << r.err;
  EXPECT_TRUE(contains(r.err, "written whole before it")) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(has_temporaries(dir_ / "out"));
  for (const auto& name : list_files(dir_ / "out")) {
    SCOPED_TRACE(name);
    EXPECT_GT(fs::file_size(dir_ / "out" / name), 0u);
    if (fs::path(name).parent_path().empty()) {  // every label map left is readable
      EXPECT_NO_THROW(io::read_label_map(dir_ / "out" / name));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Contract, FullDisk,
                         ::testing::Values(DiskCase{"Png", {}, 2}, DiskCase{"NiftiGz", {"--format", "nii.gz"}, 2},
                                           DiskCase{"Nifti", {"--format", "nii"}, 3},
                                           DiskCase{"Probabilities", {"--format", "nii.gz", "--probabilities"}, 5},
                                           DiskCase{"Overlay", {"--overlay"}, 3}),
                         [](const auto& info) { return std::string(info.param.label); });

// A film's outputs, and seg-augment's samples with their montage and record, are each a unit:
// the disk filling half way leaves none of the unit's files, not a film with some of its masks.
TEST_F(Contract, AFilmOrAnAugmentedSetThatFailsHalfWayLeavesNoneOfItsFiles) {
  seg::fail_write_for_testing(2);  // the first film's second mask
  const auto film = segment({s(dir_ / "films"), "-o", s(dir_ / "out"), "--masks"});
  seg::fail_write_for_testing(3);  // the second sample's image
  const auto samples = run_tool_in_process(seg::tools::augment, {"--data", s(dir_ / "set"), "--case", "a", "-o",
                                                                 s(dir_ / "samples"), "-k", "2"});
  seg::fail_write_for_testing(0);
  EXPECT_EQ(film.code, 1) << film.err;
  EXPECT_TRUE(contains(film.err, "no space left on device")) << film.err;
  EXPECT_TRUE(!fs::exists(dir_ / "out") || list_files(dir_ / "out").empty());
  EXPECT_EQ(samples.code, 1) << samples.err;
  EXPECT_TRUE(contains(samples.err, "no space left on device")) << samples.err;
  EXPECT_TRUE(!fs::exists(dir_ / "samples") || list_files(dir_ / "samples").empty());
}

// A film that fails in an --overwrite run keeps the files an earlier run wrote for it.
TEST_F(Contract, AFilmThatFailsInAnOverwriteRunKeepsItsEarlierFiles) {
  ASSERT_EQ(segment({s(dir_ / "films"), "-o", s(dir_ / "out"), "--masks"}).code, 0);
  const auto earlier = list_files(dir_ / "out");
  seg::fail_write_for_testing(3);  // the first film's overlay, after its two masks
  const auto r = segment({s(dir_ / "films"), "-o", s(dir_ / "out"), "--masks", "--overlay", "--overwrite"});
  seg::fail_write_for_testing(0);
  EXPECT_EQ(r.code, 1) << r.err;
  for (const auto& name : earlier) EXPECT_TRUE(fs::exists(dir_ / "out" / name)) << name;
  EXPECT_FALSE(fs::exists(dir_ / "out" / "overlays" / "a.png"));
}

// What a killed conversion left in its output folder (a staging folder of a process that is
// gone) neither makes the folder count as not empty nor stays.
TEST_F(Contract, AKilledConversionsStagingFolderIsRemovedByTheNextOne) {
  const fs::path stale = dir_ / "out" / ".segtmp.999999999.dead";
  fs::create_directories(stale / "images");
  std::ofstream(stale / "images" / "a.png") << "half a film";
  const auto r = run_tool_in_process(seg::tools::convert, {s(dir_ / "set"), "-o", s(dir_ / "out")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "dataset.json"));
  // One left beside a folder that did not exist yet goes when the next run stages there.
  const fs::path beside = dir_ / ".segtmp.999999999.gone";
  fs::create_directories(beside / "images");
  EXPECT_EQ(run_tool_in_process(seg::tools::convert, {s(dir_ / "set"), "-o", s(dir_ / "fresh")}).code, 0);
  EXPECT_FALSE(fs::exists(beside));
}

TEST_F(Contract, AFullDiskNeverReplacesAGoodFileWithAnEmptyOne) {
  ASSERT_EQ(run_tool_in_process(seg::tools::convert, {"--labels", s(dir_ / "set" / "labels" / "a.png"), "-o", s(dir_ / "good.png")}).code, 0);
  const std::string good = seg::read_file(dir_ / "good.png");
  for (const std::string target : {"good.png", "good.nii.gz"}) {
    if (target != "good.png") {
      ASSERT_EQ(run_tool_in_process(seg::tools::convert, {"--labels", s(dir_ / "set" / "labels" / "a.png"), "-o", s(dir_ / target)}).code, 0);
    }
    const std::string before = seg::read_file(dir_ / target);
    seg::fail_write_for_testing(1);
    const auto r = run_tool_in_process(seg::tools::convert,
                                       {"--labels", s(dir_ / "set" / "labels" / "b.png"), "-o", s(dir_ / target), "--overwrite"});
    seg::fail_write_for_testing(0);
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(r.err, "seg-convert: error: " + s(dir_ / target) + ": no space left on device\n");
    EXPECT_EQ(seg::read_file(dir_ / target), before);
  }
  EXPECT_FALSE(has_temporaries(dir_.path()));
}

TEST_F(Contract, ARunThatFailsBeforeItsFirstOutputLeavesNoEmptyFolders) {
  seg::fail_write_for_testing(1);
  auto r = run_tool_in_process(seg::tools::augment, {"--data", s(dir_ / "set"), "--case", "a", "-o", s(dir_ / "new" / "aug"), "--seed", "1"});
  seg::fail_write_for_testing(0);
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "no space left on device")) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "new")) << "the folders it made are gone";
  seg::fail_write_for_testing(1);
  r = segment({s(dir_ / "films"), "-o", s(dir_ / "seg"), "--overlay", "--masks"});
  seg::fail_write_for_testing(0);
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(fs::exists(dir_ / "seg"));
}

// On a real small file system (root only: it mounts a 40 kB tmpfs).
TEST_F(Contract, ARealFullDiskIsReportedAsSuch) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  const fs::path small = dir_ / "small";
  fs::create_directories(small);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=40k") != 0) GTEST_SKIP() << "cannot mount a tmpfs here";
  // Films big enough that a few fill 40 kB.
  fs::create_directories(dir_ / "big");
  for (int i = 0; i < 6; ++i)
    io::write_image(dir_ / "big" / ("f" + std::to_string(i) + ".png"),
                    image_of(torch::randint(0, 256, {96, 96}, torch::kByte), "uint8"));
  const auto png = segment({s(dir_ / "big"), "-o", s(small / "out"), "--probabilities", "--format", "nii.gz"});
  const auto leftovers = list_files(small);
  bool any_empty = false;
  for (const auto& name : leftovers) any_empty = any_empty || fs::file_size(small / name) == 0;
  ::umount(small.c_str());
  EXPECT_EQ(png.code, 1) << png.out;
  EXPECT_TRUE(contains(png.err, "no space left on device")) << png.err;
  EXPECT_EQ(std::count(png.err.begin(), png.err.end(), '\n'), 1) << png.err;
  EXPECT_FALSE(any_empty);
  for (const auto& name : leftovers) EXPECT_EQ(name.find(".segtmp."), std::string::npos) << name;
}

TEST_F(Contract, AFilmThatCannotBeDecodedStopsTheRunOrIsListedWithKeepGoing) {
  // A PNG whose header and end are sound but whose pixel data is not.
  std::string bytes = seg::read_file(dir_ / "films" / "b.png");
  const auto idat = bytes.find("IDAT");
  for (size_t i = idat + 6; i < idat + 30 && i + 12 < bytes.size(); ++i) bytes[i] = static_cast<char>(0xff);
  std::ofstream(dir_ / "films" / "b.png", std::ios::binary) << bytes;
  auto r = segment({s(dir_ / "films"), "-o", s(dir_ / "out"), "--batch", "1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "b.png") && contains(r.err, "1 of 3 films segmented before it")) << r.err;
  EXPECT_EQ(list_files(dir_ / "out"), std::vector<std::string>{"a.png"});
  r = segment({s(dir_ / "films"), "-o", s(dir_ / "out2"), "--keep-going"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.err, "1 film could not be read") && contains(r.err, "b.png")) << r.err;
  EXPECT_EQ(list_files(dir_ / "out2"), (std::vector<std::string>{"a.png", "c.png"}));
}

TEST_F(Contract, FolderReadersSkipTemporariesThatKilledRunsLeft) {
  ASSERT_EQ(segment({s(dir_ / "films"), "-o", s(dir_ / "out")}).code, 0);
  // What a run killed with SIGKILL leaves: a hidden temporary of a process that is gone.
  const std::string stale = ".segtmp.999999999.ab.png";
  fs::copy_file(dir_ / "out" / "a.png", dir_ / "films" / stale);
  std::ofstream(dir_ / "out" / stale) << "half a png";
  fs::copy(dir_ / "out", dir_ / "truth");  // the stale temporary too
  auto r = run_tool_in_process(seg::tools::evaluate, {s(dir_ / "out"), s(dir_ / "truth")});
  EXPECT_EQ(r.code, 0) << r.err;
  r = segment({s(dir_ / "films"), "-o", s(dir_ / "out2")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "3 label maps written")) << r.out;
  r = segment({s(dir_ / "films"), "-o", s(dir_ / "out"), "--overwrite"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out" / stale)) << "a run removes the stale temporaries in its folder";
}

TEST_F(Contract, LongLegalNamesAreWritten) {
  // An output file name of 240 bytes (legal: NAME_MAX is 255): the temporary name stays short.
  const std::string long_name = std::string(236, 'n') + ".png";
  auto r = run_tool_in_process(seg::tools::convert, {s(dir_ / "films" / "a.png"), "-o", s(dir_ / long_name)});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / long_name));
  // The longest case ID, with a mask named after it and its class.
  const std::string id(seg::kMaxNameBytes, 'c');
  fs::create_directories(dir_ / "long");
  fs::copy_file(dir_ / "films" / "a.png", dir_ / "long" / (id + ".png"));
  r = segment({s(dir_ / "long"), "-o", s(dir_ / "out"), "--masks"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "out" / (id + ".png")));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "masks" / (id + "_label_2.png")));
}

struct SignalCase {
  const char* label;
  int signal_number;
  int exit_code;
};

class Signals : public Contract, public ::testing::WithParamInterface<SignalCase> {};

// The real binary, stopped with a temporary file written and its rename to come, then sent a
// signal: it removes the temporary, says so, and exits 128 + the signal; the outputs it had
// finished stay whole.
TEST_P(Signals, RemoveTheFileInFlightAndExitWithTheSignalsCode) {
  if (!fs::exists(kBin / "seg-segment")) GTEST_SKIP() << "build seg-segment first";
  const pid_t pid = seg::testing::spawn(kBin / "seg-segment",
                                        {"--model", s(dir_ / "model.pth"), s(dir_ / "films"), "-o", s(dir_ / "out"), "--batch", "1"},
                                        dir_ / "log.txt", {"SEG_TEST_STOP_BEFORE_RENAME=b.png"});
  // Wait until it has stopped itself before renaming b.png.
  ASSERT_TRUE(stops_itself(pid)) << seg::testing::text_of(dir_ / "log.txt");
  EXPECT_TRUE(has_temporaries(dir_ / "out"));
  ::kill(pid, GetParam().signal_number);
  ::kill(pid, SIGCONT);
  EXPECT_EQ(seg::testing::wait_exit(pid), GetParam().exit_code);
  const std::string log = seg::testing::text_of(dir_ / "log.txt");
  EXPECT_TRUE(contains(log, "seg-segment: interrupted by")) << log;
  EXPECT_FALSE(has_temporaries(dir_ / "out")) << "the file in flight is removed";
  EXPECT_EQ(list_files(dir_ / "out"), std::vector<std::string>{"a.png"});
  EXPECT_NO_THROW(io::read_label_map(dir_ / "out" / "a.png"));
}

INSTANTIATE_TEST_SUITE_P(Contract, Signals,
                         ::testing::Values(SignalCase{"Interrupt", SIGINT, 130}, SignalCase{"Terminate", SIGTERM, 143},
                                           SignalCase{"HangUp", SIGHUP, 129}),
                         [](const auto& info) { return std::string(info.param.label); });

// Interrupted, a conversion into a folder it had to create removes that folder's parents too.
TEST_F(Contract, AnInterruptedConversionRemovesTheFoldersItMade) {
  const pid_t pid = seg::testing::spawn(kBin / "seg-convert", {s(dir_ / "set"), "-o", s(dir_ / "deep" / "er" / "new")},
                                        dir_ / "log.txt", {"SEG_TEST_STOP_BEFORE_RENAME=dataset.json"});
  ASSERT_TRUE(stops_itself(pid)) << seg::testing::text_of(dir_ / "log.txt");
  EXPECT_TRUE(fs::exists(dir_ / "deep" / "er"));
  ::kill(pid, SIGINT);
  ::kill(pid, SIGCONT);
  EXPECT_EQ(seg::testing::wait_exit(pid), 130) << seg::testing::text_of(dir_ / "log.txt");
  EXPECT_FALSE(fs::exists(dir_ / "deep")) << "the folders it made are removed";
}

// A data set folder written over an existing one (--overwrite) never follows a link in it:
// the link's target, here the input's own images, stays as it was.
TEST_F(Contract, AFolderOutputNeverWritesThroughALinkInsideIt) {
  fs::create_directories(dir_ / "out");
  fs::create_directory_symlink(dir_ / "set" / "images", dir_ / "out" / "images");
  const auto before = snapshot(dir_ / "set");
  const auto r = run_tool_in_process(seg::tools::convert, {s(dir_ / "set"), "-o", s(dir_ / "out"), "--size", "8", "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "images: is a symbolic link")) << r.err;
  EXPECT_EQ(snapshot(dir_ / "set"), before);
  EXPECT_FALSE(has_temporaries(dir_ / "out"));
}

// Every destination is checked before the first file moves: a folder that cannot take the
// new data set keeps every file it had, not half of them.
TEST_F(Contract, AFolderOutputIsCheckedWholeBeforeAnyFileIsReplaced) {
  ASSERT_EQ(run_tool_in_process(seg::tools::convert, {s(dir_ / "set"), "-o", s(dir_ / "old"), "--size", "8"}).code, 0);
  fs::remove_all(dir_ / "old" / "labels");
  std::ofstream(dir_ / "old" / "labels") << "the user's notes";
  const auto before = snapshot(dir_ / "old");
  const auto r = run_tool_in_process(seg::tools::convert, {s(dir_ / "set"), "-o", s(dir_ / "old"), "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "labels: is a file where the output has a folder")) << r.err;
  EXPECT_EQ(snapshot(dir_ / "old"), before);
  EXPECT_FALSE(has_temporaries(dir_ / "old"));
}

// A data set is an input with every file it names, wherever its patterns point and however
// it is named (its folder or its dataset.json): no tool writes over any of them.
TEST_F(Contract, EveryFileOfAnInputDataSetIsAnInput) {
  fs::create_directories(dir_ / "pointer");
  auto json = seg::read_file(dir_ / "set" / "dataset.json");
  for (const std::string folder : {"images/", "labels/"})
    json.replace(json.find("\"" + folder), folder.size() + 1, "\"../set/" + folder);
  std::ofstream(dir_ / "pointer" / "dataset.json") << json;
  const auto before = snapshot(dir_ / "set");
  auto r = run_tool_in_process(seg::tools::convert, {s(dir_ / "pointer"), "-o", s(dir_ / "set"), "--size", "8", "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "holds an input of this run")) << r.err;
  r = segment({"--data", s(dir_ / "set" / "dataset.json"), "-o", s(dir_ / "set"), "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "is an input of this run")) << r.err;
  r = segment({"--data", s(dir_ / "set"), "-o", s(dir_ / "set" / "labels"), "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "is an input of this run")) << r.err;
  r = run_tool_in_process(seg::tools::augment, {"--data", s(dir_ / "set" / "dataset.json"), "--case", "a", "-o",
                                                s(dir_ / "set"), "-k", "1", "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  r = run_tool_in_process(seg::tools::evaluate, {s(dir_ / "set" / "labels"), "--data", s(dir_ / "set"), "--json",
                                                 s(dir_ / "set" / "dataset.json"), "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  r = run_tool_in_process(seg::tools::weights, {"--data", s(dir_ / "set"), "--json", s(dir_ / "set" / "labels" / "a.png"), "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  r = run_tool_in_process(seg::tools::inspect, {s(dir_ / "set"), "--case", "a", "--overlay", s(dir_ / "set" / "images" / "a.png"), "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(snapshot(dir_ / "set"), before);
  // A label map beside the scored ones, left out by the split, is no place for a report either.
  fs::copy(dir_ / "set" / "labels", dir_ / "pred");
  const auto predictions = snapshot(dir_ / "pred");
  r = run_tool_in_process(seg::tools::evaluate, {s(dir_ / "pred"), "--data", s(dir_ / "set"), "--split", "train", "--csv",
                                                 s(dir_ / "pred" / "d.png"), "--overwrite"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "is an input of this run")) << r.err;
  EXPECT_EQ(snapshot(dir_ / "pred"), predictions);
}

// An existing output folder takes the files on its own file system (a mount point, here a
// tmpfs), through a temporary folder inside it; a failed run leaves no folder it made.
TEST_F(Contract, AFolderOutputIsStagedOnItsOwnFileSystemAndAFailureLeavesNoFolders) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  const fs::path mount = dir_ / "mount";
  fs::create_directories(mount);
  if (::mount("tmpfs", mount.c_str(), "tmpfs", 0, "size=4m") != 0) GTEST_SKIP() << "cannot mount a tmpfs here";
  const auto set = run_tool_in_process(seg::tools::convert, {s(dir_ / "set"), "-o", s(mount)});
  const bool set_written = fs::exists(mount / "dataset.json") && fs::exists(mount / "images" / "a.png");
  fs::create_directories(mount / "films");
  const auto files = run_tool_in_process(seg::tools::convert, {s(dir_ / "films"), "-o", s(mount / "films"), "--format", "nii.gz"});
  const bool films_written = fs::exists(mount / "films" / "a.nii.gz");
  const bool leftovers = has_temporaries(mount);
  ::umount(mount.c_str());
  // A mount point inside an existing output: refused before the first file moves.
  ASSERT_EQ(run_tool_in_process(seg::tools::convert, {s(dir_ / "set"), "-o", s(dir_ / "old")}).code, 0);
  const auto old = snapshot(dir_ / "old");
  ASSERT_EQ(::mount("tmpfs", (dir_ / "old" / "labels").c_str(), "tmpfs", 0, "size=1m"), 0);
  const auto across = run_tool_in_process(seg::tools::convert, {s(dir_ / "set"), "-o", s(dir_ / "old"), "--size", "8", "--overwrite"});
  ::umount((dir_ / "old" / "labels").c_str());
  EXPECT_EQ(across.code, 1) << across.err;
  EXPECT_TRUE(contains(across.err, "labels: is on another file system")) << across.err;
  EXPECT_EQ(snapshot(dir_ / "old"), old);
  EXPECT_EQ(set.code, 0) << set.err;
  EXPECT_TRUE(set_written);
  EXPECT_EQ(files.code, 0) << files.err;
  EXPECT_TRUE(films_written);
  EXPECT_FALSE(leftovers);
  // A bad film among the inputs: nothing written, and the folders the run would have made are gone.
  std::ofstream(dir_ / "cut.png") << "\x89PNG\r\n";
  const auto r = run_tool_in_process(seg::tools::convert, {s(dir_ / "films" / "a.png"), s(dir_ / "cut.png"), "-o", s(dir_ / "deep" / "er" / "out")});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "deep"));
}

// Masks are named <case>_<class>: two films whose names meet so ("a" with class "x_b", "a_x"
// with class "b") are refused before anything is written, not one mask lost in silence.
TEST_F(Contract, OutputsThatWouldShareANameAreRefusedBeforeAnythingIsWritten) {
  seg::Model model = seg::load_model(dir_ / "model.pth");
  model.info.classes = {{{"background", 0}, {"x_b", 1}, {"b", 2}}};
  seg::save_model(model, dir_ / "named.pth");
  fs::create_directories(dir_ / "alike");
  fs::copy_file(dir_ / "films" / "a.png", dir_ / "alike" / "a.png");
  fs::copy_file(dir_ / "films" / "b.png", dir_ / "alike" / "a_x.png");
  const auto r = run_tool_in_process(seg::tools::segment, {s(dir_ / "alike"), "-o", s(dir_ / "out"), "--masks", "--model",
                                                           s(dir_ / "named.pth"), "--threads", "1"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(contains(r.err, "a_x_b.png: is the name of two outputs")) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

// Outputs that cannot be written are found before the first film: a folder where qc.csv goes.
TEST_F(Contract, AFolderWhereAnOutputFileGoesIsRefusedBeforeTheFirstFilm) {
  fs::create_directories(dir_ / "out" / "qc.csv");
  fs::create_directories(dir_ / "out2" / "masks" / "b_label_1.png");
  const fs::path shipped = fs::path(SEG_SOURCE_DIR) / "share" / "models" / "jsrt-fast.pth";  // it carries an estimator
  const auto qc = run_tool_in_process(seg::tools::segment, {s(dir_ / "films"), "-o", s(dir_ / "out"), "--qc", "--overwrite",
                                                            "--model", s(shipped), "--threads", "1"});
  EXPECT_EQ(qc.code, 1) << qc.err;
  EXPECT_TRUE(contains(qc.err, "qc.csv: is a folder")) << qc.err;
  EXPECT_EQ(list_files(dir_ / "out"), std::vector<std::string>{}) << "no film written";
  const auto masks = segment({s(dir_ / "films"), "-o", s(dir_ / "out2"), "--masks", "--overwrite"});
  EXPECT_EQ(masks.code, 1) << masks.err;
  EXPECT_FALSE(fs::exists(dir_ / "out2" / "a.png"));
}

// A FIFO among the films is refused at once (it waited for a writer for ever), a broken link
// is refused (it was left out in silence), and a newline in a name stays one line.
TEST_F(Contract, AFifoABrokenLinkOrANewlineInANameIsOneLineAndAnExit) {
  fs::create_directories(dir_ / "odd");
  ASSERT_EQ(::mkfifo((dir_ / "odd" / "pipe.png").c_str(), 0644), 0);
  const pid_t child = seg::testing::spawn(kBin / "seg-convert", {s(dir_ / "odd" / "pipe.png"), "-o", s(dir_ / "pipe.nii.gz")},
                                          dir_ / "fifo.log");
  EXPECT_EQ(exit_within_20s(child), 1) << "-1: seg-convert waited on a FIFO; " << seg::testing::text_of(dir_ / "fifo.log");
  EXPECT_TRUE(contains(seg::testing::text_of(dir_ / "fifo.log"), "is not a regular file")) << seg::testing::text_of(dir_ / "fifo.log");
  // A FIFO named as a model, with seg-inspect and seg-segment, likewise.
  ASSERT_EQ(::mkfifo((dir_ / "odd" / "model.pth").c_str(), 0644), 0);
  for (const auto& [tool, args] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"seg-inspect", {s(dir_ / "odd" / "model.pth")}},
           {"seg-segment", {"--model", s(dir_ / "odd" / "model.pth"), s(dir_ / "films" / "a.png"), "-o", s(dir_ / "fifo-out")}}}) {
    const pid_t reader = seg::testing::spawn(kBin / tool, args, dir_ / "fifo.log");
    EXPECT_EQ(exit_within_20s(reader), 1) << "-1: " << tool << " waited on a FIFO given as a model";
    EXPECT_TRUE(contains(seg::testing::text_of(dir_ / "fifo.log"), "is not a regular file")) << seg::testing::text_of(dir_ / "fifo.log");
  }
  fs::remove(dir_ / "odd" / "model.pth");
  fs::remove(dir_ / "odd" / "pipe.png");
  fs::copy_file(dir_ / "films" / "a.png", dir_ / "odd" / "a.png");
  fs::create_symlink(dir_ / "nowhere.png", dir_ / "odd" / "gone.png");
  auto r = segment({s(dir_ / "odd"), "-o", s(dir_ / "out")});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.err, "gone.png")) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out" / "a.png"));
  fs::remove(dir_ / "odd" / "gone.png");
  r = run_tool_in_process(seg::tools::convert, {s(dir_ / "odd" / "a.png"), "-o", s(dir_ / "new\nline" / "a.png")});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(contains(r.err, "new\\nline")) << r.err;
}

}  // namespace

// What a tool writes to stdout counts only once written: stdout on a full disk is a failure.
TEST(StdoutContract, AFailedWriteToStdoutIsAFailure) {
  const std::string tool = (fs::path(SEG_BINARY_DIR) / "seg-inspect").string();
  const int written = std::system((tool + " --help > /dev/null 2>&1").c_str());
  ASSERT_TRUE(WIFEXITED(written));
  EXPECT_EQ(WEXITSTATUS(written), 0);
  const int full = std::system((tool + " --help > /dev/full 2>/dev/null").c_str());
  ASSERT_TRUE(WIFEXITED(full));
  EXPECT_EQ(WEXITSTATUS(full), 1);
}
