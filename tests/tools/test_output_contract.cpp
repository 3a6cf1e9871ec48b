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
#include <unistd.h>

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
  bool stopped = false;
  for (int i = 0; i < 600 && !stopped; ++i) {
    int status = 0;
    stopped = ::waitpid(pid, &status, WUNTRACED | WNOHANG) == pid && WIFSTOPPED(status);
    if (!stopped) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(stopped) << seg::testing::text_of(dir_ / "log.txt");
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
