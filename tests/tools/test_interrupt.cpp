// The real seg-train binary, killed with SIGKILL in the middle of an epoch and in the middle
// of a checkpoint write: --resume completes the run, its weights equal an uninterrupted run's
// bit for bit, and the model segments. Also: two seeded CPU runs are bit-identical.
#include <seg/dataset.h>
#include <seg/fs.h>
#include <seg/model_file.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <sstream>
#include <thread>

#include "child_process.h"
#include "fixtures.h"
#include "test_support.h"

namespace fs = std::filesystem;
using seg::testing::contains;
using seg::testing::ScratchDir;
using seg::testing::spawn;
using seg::testing::text_of;
using seg::testing::wait_exit;

namespace {

const fs::path kBin = SEG_BINARY_DIR;

int run(const fs::path& program, const std::vector<std::string>& args, const fs::path& log) {
  return seg::testing::run_process(program, args, log);
}

// log.csv without its wall-time column (the only thing that may differ between runs).
std::string log_without_seconds(const fs::path& run_dir) {
  std::istringstream in(seg::read_file(run_dir / "log.csv"));
  std::string out;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::stringstream row(line);
    for (std::string cell; std::getline(row, cell, ',');) cells.push_back(cell);
    for (size_t k = 0; k < cells.size(); ++k)
      if (k != 2) out += cells[k] + ",";
    out += "\n";
  }
  return out;
}

void expect_same_weights(const fs::path& a, const fs::path& b) {
  const auto ma = seg::load_model(a), mb = seg::load_model(b);
  const auto pa = ma.net->named_parameters(true), pb = mb.net->named_parameters(true);
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
}

class Interrupt : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kBin / "seg-train") || !fs::exists(kBin / "seg-segment"))
      GTEST_SKIP() << "build seg-train and seg-segment first";
    torch::manual_seed(11);
    // Big enough that an epoch takes a noticeable time (to be killed in), small enough for CI.
    auto data = seg::testing::random_dataset("tiny", 10, 64, 64, 3, 8);
    data.labels = (data.images.to(torch::kInt) / 86).to(torch::kByte);  // something to learn
    seg::save_tensor_pack(data, tmp_ / "pack.pth");
  }

  std::vector<std::string> train_args(const fs::path& run_dir) const {
    return {"--data", (tmp_ / "pack.pth").string(), "--model", "fcn", "--epochs", "4", "--batch", "2", "--seed", "7",
            "--deterministic", "--threads", "1", "--val-every", "2", "--checkpoint-every", "0", "--out", run_dir.string()};
  }

  ScratchDir tmp_{"seg-interrupt"};
};

}  // namespace

TEST_F(Interrupt, TwoSeededRunsAreBitIdentical) {
  ASSERT_EQ(run(kBin / "seg-train", train_args(tmp_ / "a"), tmp_ / "a.log"), 0) << text_of(tmp_ / "a.log");
  ASSERT_EQ(run(kBin / "seg-train", train_args(tmp_ / "b"), tmp_ / "b.log"), 0) << text_of(tmp_ / "b.log");
  expect_same_weights(tmp_ / "a" / "model.pth", tmp_ / "b" / "model.pth");
  EXPECT_EQ(log_without_seconds(tmp_ / "a"), log_without_seconds(tmp_ / "b"));
  EXPECT_TRUE(contains(text_of(tmp_ / "a" / "log.csv"), "\n4,")) << text_of(tmp_ / "a" / "log.csv");
}

TEST_F(Interrupt, KilledMidEpochThenResumedEqualsAnUninterruptedRun) {
  ASSERT_EQ(run(kBin / "seg-train", train_args(tmp_ / "whole"), tmp_ / "whole.log"), 0) << text_of(tmp_ / "whole.log");

  const fs::path run_dir = tmp_ / "killed";
  const auto log = tmp_ / "killed.log";
  const pid_t pid = spawn(kBin / "seg-train", train_args(run_dir), log);
  // Wait for epoch 1 to end, then kill half an epoch into epoch 2.
  const auto start = std::chrono::steady_clock::now();
  while (!contains(text_of(log), "epoch 1:") && std::chrono::steady_clock::now() - start < std::chrono::seconds(120))
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const double epoch_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 4;
  std::this_thread::sleep_for(std::chrono::duration<double>(std::min(epoch_seconds, 0.05)));
  ::kill(pid, SIGKILL);
  ASSERT_EQ(wait_exit(pid), 128 + SIGKILL) << text_of(log);
  ASSERT_TRUE(fs::exists(run_dir / "checkpoint.pt"));
  EXPECT_FALSE(contains(text_of(log), "epoch 4:")) << "the run ended before it was killed";

  ASSERT_EQ(run(kBin / "seg-train", {"--resume", run_dir.string(), "--threads", "1"}, tmp_ / "resumed.log"), 0)
      << text_of(tmp_ / "resumed.log");
  EXPECT_TRUE(contains(text_of(tmp_ / "resumed.log"), "resuming at epoch")) << text_of(tmp_ / "resumed.log");
  expect_same_weights(tmp_ / "whole" / "model.pth", run_dir / "model.pth");
  EXPECT_EQ(log_without_seconds(tmp_ / "whole"), log_without_seconds(run_dir));

  // The resumed model segments.
  ASSERT_EQ(run(kBin / "seg-segment", {"--model", run_dir.string(), "--data", (tmp_ / "pack.pth").string(), "--split",
                                       "test", "--threads", "1", "-o", (tmp_ / "seg").string()},
                tmp_ / "seg.log"),
            0)
      << text_of(tmp_ / "seg.log");
  EXPECT_EQ(seg::testing::list_files(tmp_ / "seg"), (std::vector<std::string>{"i.png", "j.png"}));
}

TEST_F(Interrupt, KilledDuringACheckpointWriteThenResumed) {
  ASSERT_EQ(run(kBin / "seg-train", train_args(tmp_ / "whole"), tmp_ / "whole.log"), 0) << text_of(tmp_ / "whole.log");

  // The second checkpoint write stops itself (SIGSTOP) with its temporary file complete and
  // checkpoint.pt still the first epoch's (see seg::write_atomically's test hook).
  const fs::path run_dir = tmp_ / "killed";
  const auto log = tmp_ / "killed.log";
  const pid_t pid = spawn(kBin / "seg-train", train_args(run_dir), log, {"SEG_TEST_STOP_BEFORE_RENAME=checkpoint.pt"});
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, WUNTRACED), pid);
  ASSERT_TRUE(WIFSTOPPED(status)) << text_of(log);  // the first checkpoint write: let it go on
  ::kill(pid, SIGCONT);
  ASSERT_EQ(::waitpid(pid, &status, WUNTRACED), pid);
  ASSERT_TRUE(WIFSTOPPED(status)) << text_of(log);
  std::vector<std::string> temporaries;
  for (const auto& entry : fs::directory_iterator(run_dir))
    if (seg::is_temporary_name(entry.path().filename().string())) temporaries.push_back(entry.path().string());
  EXPECT_EQ(temporaries.size(), 1u);
  ::kill(pid, SIGKILL);
  ASSERT_EQ(wait_exit(pid), 128 + SIGKILL);
  EXPECT_TRUE(contains(text_of(log), "epoch 1:") && !contains(text_of(log), "epoch 2:")) << text_of(log);

  ASSERT_EQ(run(kBin / "seg-train", {"--resume", run_dir.string(), "--threads", "1"}, tmp_ / "resumed.log"), 0)
      << text_of(tmp_ / "resumed.log");
  EXPECT_TRUE(contains(text_of(tmp_ / "resumed.log"), "resuming at epoch 2")) << text_of(tmp_ / "resumed.log");
  expect_same_weights(tmp_ / "whole" / "model.pth", run_dir / "model.pth");
  EXPECT_EQ(log_without_seconds(tmp_ / "whole"), log_without_seconds(run_dir));
  for (const auto& t : temporaries) EXPECT_FALSE(fs::exists(t)) << "the killed run's temporary file is left";
  ASSERT_EQ(run(kBin / "seg-segment", {"--model", (run_dir / "model.pth").string(), "--data", (tmp_ / "pack.pth").string(),
                                       "--split", "test", "--threads", "1", "-o", (tmp_ / "seg").string()},
                tmp_ / "seg.log"),
            0)
      << text_of(tmp_ / "seg.log");
}
