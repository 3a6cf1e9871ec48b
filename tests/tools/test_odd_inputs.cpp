// Large and odd inputs: a 4096 x 4096 16-bit image segments within the documented memory
// bound (README, "Reliability"); a 1 x 1 image, a non-square image and an image with spacing
// give label maps of their own size and geometry.
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <seg/model_file.h>
#include <seg/models.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixtures.h"
#include "test_support.h"
#include "tool_run.h"
#include "tools.h"

namespace fs = std::filesystem;
using seg::testing::contains;
using seg::testing::image_of;
using seg::testing::run_tool_in_process;
using seg::testing::ScratchDir;
namespace io = seg::io;

namespace {

// The bound README promises for seg-segment on one 4096 x 4096 image (6 classes, CPU).
constexpr double kLargeImageBoundMiB = 1536;

void save_six_class_model(const fs::path& path) {
  seg::Model m;
  m.info.network = {"fcn", 1, 6};
  m.info.classes = seg::ClassTable::numbered(6);
  m.info.input_size = {256, 256};
  m.info.normalization.mean = 30000;
  m.info.normalization.std = 10000;
  torch::manual_seed(5);
  m.net = seg::make_network(m.info.network);
  seg::save_model(m, path);
}

}  // namespace

TEST(OddInputs, A4096Square16BitImageSegmentsWithinTheMemoryBound) {
  const fs::path bin = fs::path(SEG_BINARY_DIR) / "seg-segment";
  if (!fs::exists(bin)) GTEST_SKIP() << "build seg-segment first";
  ScratchDir tmp;
  save_six_class_model(tmp / "model.pth");
  torch::manual_seed(1);
  io::write_image(tmp / "big.png", image_of(torch::randint(0, 65536, {4096, 4096}, torch::kInt), "uint16"));
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("OMP_NUM_THREADS", "1", 1);
    const std::string model = (tmp / "model.pth").string(), input = (tmp / "big.png").string(),
                      out = (tmp / "seg").string();
    ::execl(bin.c_str(), bin.c_str(), "--model", model.c_str(), input.c_str(), "-o", out.c_str(), "--threads", "1",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  rusage usage{};
  ASSERT_EQ(::wait4(pid, &status, 0, &usage), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const double peak_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;
  std::cout << "seg-segment on 4096 x 4096 uint16: peak RSS " << peak_mib << " MiB\n";
  EXPECT_LT(peak_mib, kLargeImageBoundMiB);
  const auto labels = io::read_label_map(tmp / "seg" / "big.png");
  EXPECT_EQ(labels.height(), 4096);
  EXPECT_EQ(labels.width(), 4096);
}

TEST(OddInputs, TinyNonSquareAndSpacedImagesKeepTheirSizeAndGeometry) {
  torch::set_num_threads(1);
  ScratchDir tmp;
  save_six_class_model(tmp / "model.pth");
  io::write_image(tmp / "one.png", image_of(torch::full({1, 1}, 200, torch::kByte), "uint8"));
  io::write_image(tmp / "wide.png", image_of(torch::randint(0, 256, {30, 70}, torch::kByte), "uint8"));
  seg::Image spaced = image_of(torch::randint(0, 4000, {40, 24}, torch::kShort), "int16");
  spaced.geometry.spacing = {0.7, 0.35};
  spaced.geometry.origin = {-10.0, 5.0};
  spaced.geometry.has_spacing = true;
  io::write_image(tmp / "spaced.nii.gz", spaced);

  auto r = run_tool_in_process(seg::tools::segment, {"--model", (tmp / "model.pth").string(), (tmp / "one.png").string(),
                                                     (tmp / "wide.png").string(), (tmp / "spaced.nii.gz").string(),
                                                     "--format", "nii.gz", "--threads", "1", "-o", (tmp / "seg").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto one = io::read_label_map(tmp / "seg" / "one.nii.gz");
  EXPECT_EQ(one.height(), 1);
  EXPECT_EQ(one.width(), 1);
  const auto wide = io::read_label_map(tmp / "seg" / "wide.nii.gz");
  EXPECT_EQ(wide.height(), 30);
  EXPECT_EQ(wide.width(), 70);
  const auto spaced_out = io::read_label_map(tmp / "seg" / "spaced.nii.gz");
  EXPECT_EQ(spaced_out.height(), 40);
  EXPECT_EQ(spaced_out.width(), 24);
  EXPECT_NEAR(spaced_out.geometry.spacing[0], 0.7, 1e-6);  // NIfTI stores float32
  EXPECT_NEAR(spaced_out.geometry.spacing[1], 0.35, 1e-6);
  EXPECT_NEAR(spaced_out.geometry.origin[0], -10.0, 1e-6);
  EXPECT_LE(spaced_out.pixels.max().item<int>(), 5);

  // The other tools take them too: inspect, convert (resampling), evaluate (distances in mm).
  r = run_tool_in_process(seg::tools::inspect, {(tmp / "one.png").string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "size: 1 x 1 (height x width)")) << r.out;
  r = run_tool_in_process(seg::tools::convert, {(tmp / "one.png").string(), "--size", "4x3", "-o", (tmp / "four.nii.gz").string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(io::read_image(tmp / "four.nii.gz").width(), 3);
  // Scored against copies of themselves (seg-evaluate refuses one file as both sides).
  fs::copy(tmp / "seg", tmp / "truth");
  r = run_tool_in_process(seg::tools::evaluate, {(tmp / "seg" / "spaced.nii.gz").string(), (tmp / "truth" / "spaced.nii.gz").string(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(contains(r.out, "hd95_mm")) << r.out;
  r = run_tool_in_process(seg::tools::evaluate, {(tmp / "seg" / "one.nii.gz").string(), (tmp / "truth" / "one.nii.gz").string()});
  EXPECT_EQ(r.code, 0) << r.err;
}
