// Replays every fuzz seed and every input that once crashed a fuzz target
// (fuzz/corpus/<target>/, fuzz/regressions/<target>/) through the same code, in the normal
// build: each must be read or rejected with an exception, never crash.
#define SEG_FUZZ_IMAGE_IO 1
#include "../../fuzz/fuzz_targets.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <map>

#include "test_support.h"

namespace fs = std::filesystem;

TEST(FuzzRegressions, EverySavedInputIsReadOrRejected) {
  torch::set_num_threads(1);
  const std::map<std::string, std::function<void(const uint8_t*, size_t)>> targets = {
      {"fuzz_dataset_json", seg::fuzz::dataset_json},
      {"fuzz_tensor_pack", seg::fuzz::tensor_pack},
      {"fuzz_model_file", seg::fuzz::model_file},
      {"fuzz_state_dict", seg::fuzz::state_dict},
      {"fuzz_image", seg::fuzz::image},
      {"fuzz_image_header", seg::fuzz::image_header}};
  int replayed = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path root = fs::path(SEG_SOURCE_DIR) / "fuzz" / kind;
    if (!fs::exists(root)) continue;
    for (const auto& folder : fs::directory_iterator(root)) {
      const auto target = targets.find(folder.path().filename().string());
      ASSERT_NE(target, targets.end()) << "no fuzz target for " << folder.path();
      for (const auto& file : fs::directory_iterator(folder.path())) {
        SCOPED_TRACE(file.path().string());
        std::ifstream in(file.path(), std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        target->second(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
        ++replayed;
      }
    }
  }
  std::error_code ec;
  fs::remove_all(seg::fuzz::scratch(), ec);
  EXPECT_GT(replayed, 0);
}
