// The notebook's .pth files, the tensor pack read from Python, and the JSRT raw + GIF import.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/dataset_io.h>
#include <seg/io/image_io.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "../../io/src/gif.h"
#include "python_support.h"
#include "test_support.h"

using seg::testing::list_files;
using seg::testing::run_python;
using seg::testing::ScratchDir;
namespace io = seg::io;

namespace {

at::Tensor load_tensor(const std::filesystem::path& path) {
  const auto bytes = seg::read_file(path);
  return torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toTensor();
}

std::string quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

}  // namespace

TEST(NotebookFiles, ImportReproducesTheNotebooksLabelsExactly) {
  SEG_REQUIRE_PYTHON("torch");
  ScratchDir tmp;
  // Overlapping one-hot channels: the notebook's loop lets the later channel win.
  ASSERT_TRUE(run_python(R"(
import torch
torch.manual_seed(0)
N, C, H, W = 7, 5, 16, 12
imgs = torch.randn(N, H, W)
onehot = (torch.rand(N, C, H, W) > 0.7).float()
torch.save({'JSRT_img0': imgs}, )" + quoted(tmp / "img.pth") + R"()
torch.save(onehot, )" + quoted(tmp / "masks.pth") + R"()
seg = torch.zeros(N, H, W).long()
for channel in range(C):
    seg[onehot[:, channel] == 1] = channel + 1
torch.save(seg.to(torch.uint8), )" + quoted(tmp / "expected.pth") + R"()
torch.save(imgs, )" + quoted(tmp / "imgs_only.pth") + R"()
)", tmp.path())) << seg::read_file(tmp / "python.log");
  auto data = io::import_notebook_files(tmp / "img.pth", tmp / "masks.pth", 5);
  EXPECT_TRUE(torch::equal(data.labels, load_tensor(tmp / "expected.pth")));
  EXPECT_EQ(data.size(), 7);
  EXPECT_EQ(data.splits.at("train").size(), 5u);
  EXPECT_EQ(data.splits.at("test").size(), 2u);
  EXPECT_EQ(data.classes.size(), 6);
  EXPECT_EQ(data.classes.name_of(3), "heart");
  // Images: global min..max stretched onto 0..255, order kept.
  EXPECT_EQ(data.images.min().item<int>(), 0);
  EXPECT_EQ(data.images.max().item<int>(), 255);
  auto original = load_tensor(tmp / "imgs_only.pth");
  const float low = original.min().item<float>(), high = original.max().item<float>();
  EXPECT_NEAR(data.images[3][4][5].item<float>(), (original[3][4][5].item<float>() - low) / (high - low) * 255, 0.51);
}

TEST(NotebookFiles, ExportIsWhatTheNotebookLoads) {
  SEG_REQUIRE_PYTHON("torch");
  ScratchDir tmp;
  seg::Dataset d;
  d.name = "x";
  d.source = "memory";
  d.images = torch::randint(0, 256, {3, 8, 8}, torch::kByte);
  d.images[0][0][0] = 0;
  d.images[0][0][1] = 255;
  d.labels = torch::randint(0, 6, {3, 8, 8}, torch::kByte);
  d.cases = {"a", "b", "c"};
  d.classes = seg::ClassTable::numbered(6);
  d.splits["train"] = d.cases;
  io::export_notebook_files(d, tmp / "img.pth", tmp / "masks.pth");
  // The notebook's own loading code, verbatim in spirit.
  ASSERT_TRUE(run_python(R"(
import torch
data = torch.load()" + quoted(tmp / "img.pth") + R"(, map_location='cpu')
imgs = data['JSRT_img0'].float()
assert imgs.shape == (3, 8, 8), imgs.shape
assert abs(imgs.mean().item()) < 1e-4 and abs(imgs.std().item() - 1) < 1e-3
onehot = torch.load()" + quoted(tmp / "masks.pth") + R"().long()
N, C, H, W = onehot.shape
assert (N, C, H, W) == (3, 5, 8, 8)
seg = torch.zeros(N, H, W).long()
for channel in range(C):
    seg[onehot[:, channel] == 1] = channel + 1
torch.save(seg.to(torch.uint8), )" + quoted(tmp / "labels.pth") + R"()
)", tmp.path())) << seg::read_file(tmp / "python.log");
  EXPECT_TRUE(torch::equal(load_tensor(tmp / "labels.pth"), d.labels));
  // And back in: labels exact, images exact since they spanned 0..255.
  auto back = io::import_notebook_files(tmp / "img.pth", tmp / "masks.pth");
  EXPECT_TRUE(torch::equal(back.labels, d.labels));
  EXPECT_TRUE(torch::equal(back.images, d.images));
}

TEST(NotebookFiles, PythonReadsOurTensorPack) {
  SEG_REQUIRE_PYTHON("torch");
  ScratchDir tmp;
  seg::Dataset d;
  d.name = "packed";
  d.source = "memory";
  d.images = torch::randint(0, 256, {2, 5, 4}, torch::kByte);
  d.labels = torch::randint(0, 3, {2, 5, 4}, torch::kByte);
  d.cases = {"p", "q"};
  d.classes = seg::ClassTable::numbered(3);
  d.splits["train"] = {"q"};
  seg::save_tensor_pack(d, tmp / "pack.pth");
  ASSERT_TRUE(run_python(R"(
import torch
p = torch.load()" + quoted(tmp / "pack.pth") + R"()
assert p['format'] == 'segsuite-pack-1'
assert p['images'].dtype == torch.uint8 and p['images'].shape == (2, 5, 4)
assert p['labels'].shape == (2, 5, 4)
assert p['cases'] == ['p', 'q'] and p['split_train'] == ['q']
assert p['class_names'][0] == 'background' and list(p['class_values']) == [0, 1, 2]
torch.save(p['labels'], )" + quoted(tmp / "labels.pth") + R"()
)", tmp.path())) << seg::read_file(tmp / "python.log");
  EXPECT_TRUE(torch::equal(load_tensor(tmp / "labels.pth"), d.labels));
}

TEST(NotebookFiles, MismatchedFilesAreClearErrors) {
  SEG_REQUIRE_PYTHON("torch");
  ScratchDir tmp;
  ASSERT_TRUE(run_python(R"(
import torch
torch.save({'JSRT_img0': torch.randn(3, 8, 8)}, )" + quoted(tmp / "img.pth") + R"()
torch.save(torch.zeros(4, 5, 8, 8), )" + quoted(tmp / "masks.pth") + R"()
)", tmp.path()));
  try {
    io::import_notebook_files(tmp / "img.pth", tmp / "masks.pth");
    FAIL() << "expected seg::Error";
  } catch (const seg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("masks.pth"), std::string::npos) << e.what();
  }
  seg::write_file_atomically(tmp / "junk.pth", "not a zip");
  EXPECT_THROW(io::import_notebook_files(tmp / "junk.pth", tmp / "masks.pth"), seg::Error);
}

// ---- GIF decoder -----------------------------------------------------------------------

TEST(Gif, DecodesWhatPilWrites) {
  SEG_REQUIRE_PYTHON("PIL, numpy");
  ScratchDir tmp;
  // Sizes that force code-width growth and a dictionary reset (many distinct runs), a
  // palette image, an interlaced one and a binary mask like SCR's.
  ASSERT_TRUE(run_python(R"(
from PIL import Image
import numpy as np
rng = np.random.default_rng(1)
cases = {
  'noise': rng.integers(0, 256, (97, 131)).astype(np.uint8),
  'mask': (np.add.outer(np.arange(64), np.arange(80)) % 23 > 11).astype(np.uint8) * 255,
  'flat': np.full((5, 3), 9, np.uint8),
}
for name, a in cases.items():
    Image.fromarray(a, 'L').save(f')" + tmp.path().string() + R"(/{name}.gif')
    Image.fromarray(a, 'L').save(f')" + tmp.path().string() + R"(/{name}_i.gif', interlace=True)
    np.asarray(Image.open(f')" + tmp.path().string() + R"(/{name}.gif').convert('L')).tofile(f')" + tmp.path().string() + R"(/{name}.raw')
)", tmp.path())) << seg::read_file(tmp / "python.log");
  for (const std::string name : {"noise", "mask", "flat"}) {
    const auto expected = seg::read_file(tmp / (name + ".raw"));
    for (const std::string& file : {name + ".gif", name + "_i.gif"}) {
      SCOPED_TRACE(file);
      auto gif = seg::io::detail::decode_gif(seg::read_file(tmp / file), tmp / file);
      ASSERT_EQ(static_cast<size_t>(gif.width * gif.height), expected.size());
      EXPECT_TRUE(std::equal(gif.grey.begin(), gif.grey.end(), expected.begin(),
                             [](uint8_t a, char b) { return a == static_cast<uint8_t>(b); }));
    }
  }
  const auto bytes = seg::read_file(tmp / "noise.gif");
  EXPECT_THROW(seg::io::detail::decode_gif(bytes.substr(0, bytes.size() / 2), "cut.gif"), seg::Error);
  EXPECT_THROW(seg::io::detail::decode_gif("GIF89", "tiny.gif"), seg::Error);
}

// ---- JSRT raw + SCR masks -----------------------------------------------------------------

namespace {

// Raw big-endian 16-bit file whose value at (r, c) is (r * 97 + c * 13) % 4096.
void write_raw(const std::filesystem::path& path, int size, int seed) {
  std::ofstream out(path, std::ios::binary);
  for (int r = 0; r < size; ++r)
    for (int c = 0; c < size; ++c) {
      const int v = (r * 97 + c * 13 + seed) % 4096;
      out.put(static_cast<char>(v >> 8));
      out.put(static_cast<char>(v & 0xFF));
    }
}

}  // namespace

TEST(Jsrt, ImportsRawImagesAndGifMasks) {
  SEG_REQUIRE_PYTHON("PIL, numpy");
  ScratchDir tmp;
  const int raw_size = 16, size = 4;
  std::filesystem::create_directories(tmp / "raw");
  write_raw(tmp / "raw" / "JPCNN002.IMG", raw_size, 0);
  write_raw(tmp / "raw" / "JPCLN001.IMG", raw_size, 1000);
  // Masks 8x8 -> 4x4 sample pixels (1::2, 1::2); every other pixel is on, so sampling the
  // wrong pixel shows. Structure k covers output rows >= kFirstRow[k]; later ones overwrite.
  // Folders with spaces and with underscores.
  ASSERT_TRUE(run_python(R"(
from PIL import Image
import numpy as np, os
root = ')" + (tmp / "masks").string() + R"('
folders = ['right lung', 'left_lung', 'heart', 'right clavicle', 'left_clavicle']
first_row = [0, 0, 1, 2, 3]
for k, folder in enumerate(folders):
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    for case in ['JPCLN001', 'JPCNN002']:
        sampled = np.zeros((4, 4), np.uint8)
        sampled[first_row[k]:, :] = 255
        if case == 'JPCNN002': sampled[:, 0] = 0
        m = np.full((8, 8), 255, np.uint8)
        m[1::2, 1::2] = sampled
        Image.fromarray(m, 'L').save(os.path.join(root, folder, case + '.gif'))
)", tmp.path())) << seg::read_file(tmp / "python.log");
  auto data = io::import_jsrt(tmp / "raw", tmp / "masks", size, raw_size);
  EXPECT_EQ(data.cases, (std::vector<std::string>{"JPCLN001", "JPCNN002"}));
  EXPECT_EQ(data.splits.at("train"), data.cases);  // not the 247 standard cases: one split
  EXPECT_EQ(data.splits.count("test"), 0u);

  const int first_row[5] = {0, 0, 1, 2, 3};
  for (int64_t r = 0; r < size; ++r)
    for (int64_t c = 0; c < size; ++c) {
      int expected = 0;
      for (int k = 0; k < 5; ++k)
        if (r >= first_row[k]) expected = k + 1;
      EXPECT_EQ(data.labels[0][r][c].item<int>(), expected) << r << "," << c;
      EXPECT_EQ(data.labels[1][r][c].item<int>(), c == 0 ? 0 : expected) << r << "," << c;
    }

  // Intensity: 4095 - value, mean of each 4x4 block, scaled by 255/4095 and rounded.
  for (int64_t r = 0; r < size; ++r)
    for (int64_t c = 0; c < size; ++c) {
      double sum = 0;
      for (int dr = 0; dr < 4; ++dr)
        for (int dc = 0; dc < 4; ++dc) sum += 4095 - ((r * 4 + dr) * 97 + (c * 4 + dc) * 13 + 1000) % 4096;
      EXPECT_EQ(data.images[0][r][c].item<int>(), std::lround(sum / 16 * 255 / 4095)) << r << "," << c;
    }
}

TEST(Jsrt, MissingOrTruncatedFilesNameThemselves) {
  ScratchDir tmp;
  std::filesystem::create_directories(tmp / "raw");
  std::filesystem::create_directories(tmp / "masks");
  write_raw(tmp / "raw" / "JPCLN001.IMG", 16, 0);
  try {
    io::import_jsrt(tmp / "raw", tmp / "masks", 4, 16);
    FAIL();
  } catch (const seg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("right lung"), std::string::npos) << e.what();
  }
  for (const char* folder : {"right lung", "left lung", "heart", "right clavicle", "left clavicle"})
    std::filesystem::create_directories(tmp / "masks" / folder);
  try {
    io::import_jsrt(tmp / "raw", tmp / "masks", 4, 16);
    FAIL();
  } catch (const seg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("JPCLN001.gif"), std::string::npos) << e.what();
  }
  seg::write_file_atomically(tmp / "raw" / "JPCLN001.IMG", std::string(100, '\0'));
  try {
    io::import_jsrt(tmp / "raw", tmp / "masks", 4, 16);
    FAIL();
  } catch (const seg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("JPCLN001.IMG"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}
