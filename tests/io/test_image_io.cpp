#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/image_io.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <limits>

#include "fixtures.h"
#include "image_bytes.h"
#include "python_support.h"
#include "test_support.h"

using seg::Image;
using seg::testing::contains;
using seg::testing::error_of;
using seg::testing::image_of;
using seg::testing::list_files;
using seg::testing::ScratchDir;
namespace io = seg::io;

namespace {

Image random_labels(int64_t h, int64_t w, int max_value = 5) {
  return image_of(torch::randint(0, max_value + 1, {h, w}, torch::kByte), "uint8");
}

// A minimal NIfTI-1 file (uint8, qform/sform unset) with nz slices, written by hand so the
// tests need no ITK.
void write_nifti_volume(const std::filesystem::path& path, int nx, int ny, int nz) {
  char header[352] = {};
  auto put_i32 = [&](int offset, int32_t v) { std::memcpy(header + offset, &v, 4); };
  auto put_i16 = [&](int offset, int16_t v) { std::memcpy(header + offset, &v, 2); };
  auto put_f32 = [&](int offset, float v) { std::memcpy(header + offset, &v, 4); };
  put_i32(0, 348);
  put_i16(40, 3);
  put_i16(42, static_cast<int16_t>(nx));
  put_i16(44, static_cast<int16_t>(ny));
  put_i16(46, static_cast<int16_t>(nz));
  for (int d = 4; d < 8; ++d) put_i16(40 + 2 * d, 1);
  put_i16(70, 2);  // DT_UNSIGNED_CHAR
  put_i16(72, 8);
  for (int d = 0; d < 4; ++d) put_f32(76 + 4 * d, 1.0f);
  put_f32(108, 352.0f);
  std::memcpy(header + 344, "n+1\0", 4);
  std::ofstream out(path, std::ios::binary);
  out.write(header, sizeof header);
  for (int i = 0; i < nx * ny * nz; ++i) out.put(static_cast<char>(i % 200));
}

}  // namespace

TEST(ImageIo, Png8BitRoundTripIsExactAndHasNoSpacing) {
  ScratchDir tmp;
  auto image = image_of(torch::randint(0, 256, {17, 23}, torch::kByte), "uint8");
  io::write_image(tmp / "a.png", image);
  auto back = io::read_image(tmp / "a.png");
  EXPECT_EQ(back.pixels.scalar_type(), torch::kByte);
  EXPECT_EQ(back.pixel_type, "uint8");
  EXPECT_TRUE(torch::equal(back.pixels, image.pixels));
  EXPECT_FALSE(back.geometry.has_spacing);
  EXPECT_EQ(list_files(tmp.path()), std::vector<std::string>{"a.png"});  // no temporary left
}

TEST(ImageIo, Png16BitKeepsFullRange) {
  ScratchDir tmp;
  auto pixels = torch::randint(0, 65536, {9, 11}, torch::kInt);
  pixels[0][0] = 65535;
  io::write_image(tmp / "a.png", image_of(pixels, "uint16"));
  auto back = io::read_image(tmp / "a.png");
  EXPECT_EQ(back.pixel_type, "uint16");
  EXPECT_EQ(back.pixels.scalar_type(), torch::kInt);
  EXPECT_TRUE(torch::equal(back.pixels, pixels));
}

TEST(ImageIo, TiffAndBmpRoundTrip) {
  ScratchDir tmp;
  auto wide = torch::randint(0, 65536, {8, 5}, torch::kInt);
  io::write_image(tmp / "a.tif", image_of(wide, "uint16"));
  EXPECT_TRUE(torch::equal(io::read_image(tmp / "a.tif").pixels, wide));
  auto narrow = torch::randint(0, 256, {8, 5}, torch::kByte);
  io::write_image(tmp / "a.bmp", image_of(narrow, "uint8"));
  EXPECT_TRUE(torch::equal(io::read_image(tmp / "a.bmp").pixels, narrow));
}

TEST(ImageIo, NiftiKeepsPixelTypeAndGeometry) {
  ScratchDir tmp;
  for (const auto& [type, name] : {std::pair{torch::kShort, "int16"}, std::pair{torch::kFloat, "float"}}) {
    auto image = image_of(torch::randint(-1000, 1000, {12, 7}, type), name);
    const double angle = 0.3;
    image.geometry.spacing = {0.5, 0.75};
    image.geometry.origin = {10.0, -3.0};
    image.geometry.direction = {std::cos(angle), -std::sin(angle), std::sin(angle), std::cos(angle)};
    image.geometry.has_spacing = true;
    for (const std::string file : {"a.nii.gz", "a.nii", "a.nrrd", "a.mha"}) {
      SCOPED_TRACE(file + " " + name);
      io::write_image(tmp / file, image);
      auto back = io::read_image(tmp / file);
      EXPECT_EQ(back.pixels.scalar_type(), type);
      EXPECT_TRUE(torch::equal(back.pixels, image.pixels)) << back.pixels.slice(0, 0, 2) << image.pixels.slice(0, 0, 2);
      EXPECT_TRUE(back.geometry.has_spacing);
      for (int i = 0; i < 2; ++i) {
        EXPECT_NEAR(back.geometry.spacing[static_cast<size_t>(i)], image.geometry.spacing[static_cast<size_t>(i)], 1e-5);
        EXPECT_NEAR(back.geometry.origin[static_cast<size_t>(i)], image.geometry.origin[static_cast<size_t>(i)], 1e-4);
      }
      for (int i = 0; i < 4; ++i)
        EXPECT_NEAR(back.geometry.direction[static_cast<size_t>(i)], image.geometry.direction[static_cast<size_t>(i)], 1e-5);
    }
  }
  EXPECT_EQ(list_files(tmp.path()).size(), 4u);  // no temporaries left behind
}

TEST(ImageIo, Uint16StaysUint16ThroughNifti) {
  ScratchDir tmp;
  auto pixels = torch::randint(0, 65536, {6, 6}, torch::kInt);
  io::write_image(tmp / "a.nii.gz", image_of(pixels, "uint16"));
  auto back = io::read_image(tmp / "a.nii.gz");
  EXPECT_EQ(back.pixel_type, "uint16");
  EXPECT_TRUE(torch::equal(back.pixels, pixels));
}

TEST(ImageIo, LabelMapPngToNiftiToPngIsExact) {
  ScratchDir tmp;
  auto labels = random_labels(31, 29);
  io::write_label_map(tmp / "l.png", labels);
  auto from_png = io::read_label_map(tmp / "l.png");
  io::write_label_map(tmp / "l.nii.gz", from_png);
  auto from_nifti = io::read_label_map(tmp / "l.nii.gz");
  io::write_label_map(tmp / "l2.png", from_nifti);
  auto back = io::read_label_map(tmp / "l2.png");
  EXPECT_TRUE(torch::equal(from_nifti.pixels, labels.pixels));
  EXPECT_TRUE(torch::equal(back.pixels, labels.pixels));
}

TEST(ImageIo, NiftiToPngToNiftiKeepsThePixelGridButNotSpacing) {
  ScratchDir tmp;
  auto image = image_of(torch::randint(0, 256, {10, 14}, torch::kByte), "uint8");
  image.geometry.spacing = {0.35, 0.35};
  image.geometry.has_spacing = true;
  io::write_image(tmp / "a.nii.gz", image);
  auto png_path = tmp / "a.png";
  io::write_image(png_path, io::read_image(tmp / "a.nii.gz"));
  auto from_png = io::read_image(png_path);
  EXPECT_FALSE(from_png.geometry.has_spacing);  // PNG has no physical spacing
  io::write_image(tmp / "b.nii.gz", from_png);
  auto back = io::read_image(tmp / "b.nii.gz");
  EXPECT_TRUE(torch::equal(back.pixels, image.pixels));
  EXPECT_DOUBLE_EQ(back.geometry.spacing[0], 1.0);
}

TEST(ImageIo, ColourIsRejectedUnlessGrayIsAsked) {
  SEG_REQUIRE_PYTHON("PIL, numpy");
  ScratchDir tmp;
  ASSERT_TRUE(seg::testing::run_python(R"(
from PIL import Image
import numpy as np
rgb = np.zeros((4, 5, 3), np.uint8); rgb[..., 0] = 200; rgb[..., 1] = 100; rgb[..., 2] = 10
Image.fromarray(rgb, 'RGB').save(')" + (tmp / "colour.png").string() + R"(')
grey = np.full((4, 5, 3), 77, np.uint8)
Image.fromarray(grey, 'RGB').save(')" + (tmp / "grey_rgb.png").string() + R"(')
)", tmp.path()));
  const auto message = error_of([&] { io::read_image(tmp / "colour.png"); });
  EXPECT_TRUE(contains(message, "colour.png")) << message;
  EXPECT_TRUE(contains(message, "--gray")) << message;
  io::ReadOptions to_gray;
  to_gray.to_gray = true;
  auto grey = io::read_image(tmp / "colour.png", to_gray);
  ASSERT_EQ(grey.pixels.dim(), 2);
  // OpenCV's luminance: 0.299 R + 0.587 G + 0.114 B = 119.6 -> 120
  EXPECT_EQ(grey.pixels[0][0].item<int>(), 120);
  // An RGB file whose channels agree is grey already.
  auto same = io::read_image(tmp / "grey_rgb.png");
  EXPECT_EQ(same.pixels.dim(), 2);
  EXPECT_EQ(same.pixels[3][4].item<int>(), 77);
}

// Grey+alpha and RGBA: grey where the alpha is opaque everywhere (and, for RGBA, the colour
// channels agree); transparency is refused like colour unless --gray is asked.
TEST(ImageIo, AlphaIsGreyOnlyWhenOpaque) {
  ScratchDir tmp;
  const auto write = [&](const std::string& name, const std::string& bytes) {
    seg::write_file_atomically(tmp / name, bytes);
    return tmp / name;
  };
  std::string opaque_la, clear_la, opaque_grey_rgba, clear_grey_rgba, colour_rgba;
  for (int i = 0; i < 6; ++i) {
    const char grey = static_cast<char>(40 + 10 * i), alpha = static_cast<char>(i == 2 ? 128 : 255);
    opaque_la += std::string{grey, '\xff'};
    clear_la += std::string{grey, alpha};
    opaque_grey_rgba += std::string{grey, grey, grey, '\xff'};
    clear_grey_rgba += std::string{grey, grey, grey, alpha};
    colour_rgba += std::string{grey, static_cast<char>(grey + 1), grey, '\xff'};
  }
  const auto expected = torch::tensor({40, 50, 60, 70, 80, 90}, torch::kByte).reshape({2, 3});
  for (const auto& [name, bytes] : {std::pair{"la.png", seg::testing::png_file(3, 2, 4, opaque_la)},
                                    std::pair{"rgba.png", seg::testing::png_file(3, 2, 6, opaque_grey_rgba)}}) {
    SCOPED_TRACE(name);
    const auto grey = io::read_image(write(name, bytes));
    EXPECT_TRUE(torch::equal(grey.pixels, expected)) << grey.pixels;
  }
  io::ReadOptions to_gray;
  to_gray.to_gray = true;
  for (const auto& [name, bytes] : {std::pair{"clear_la.png", seg::testing::png_file(3, 2, 4, clear_la)},
                                    std::pair{"clear_rgba.png", seg::testing::png_file(3, 2, 6, clear_grey_rgba)}}) {
    SCOPED_TRACE(name);
    const auto path = write(name, bytes);
    const auto message = error_of([&] { io::read_image(path); });
    EXPECT_TRUE(contains(message, name + std::string(": has transparency (an alpha channel that is not opaque); flatten it or pass --gray")))
        << message;
    EXPECT_TRUE(torch::equal(io::read_image(path, to_gray).pixels, expected));
  }
  const auto colour = write("colour.png", seg::testing::png_file(3, 2, 6, colour_rgba));
  EXPECT_TRUE(contains(error_of([&] { io::read_image(colour); }), "is a colour image (4 channels)"));
  EXPECT_EQ(io::read_image(colour, to_gray).pixels.dim(), 2);
  // OpenCV decodes a grey+alpha TIFF without its alpha: transparency cannot be seen, so the
  // file is refused unless --gray is asked.
  const auto tiff = write("la.tif", seg::testing::tiff_file(3, 2, 2, 1, opaque_la));
  EXPECT_TRUE(contains(error_of([&] { io::read_image(tiff); }), "la.tif: has an alpha channel that cannot be checked"));
  EXPECT_TRUE(torch::equal(io::read_image(tiff, to_gray).pixels, expected));
}

TEST(ImageIo, PalettePngLabelMapGivesIndices) {
  SEG_REQUIRE_PYTHON("PIL, numpy");
  ScratchDir tmp;
  ASSERT_TRUE(seg::testing::run_python(R"(
from PIL import Image
import numpy as np
a = (np.arange(6 * 7) % 4).astype(np.uint8).reshape(6, 7)
im = Image.fromarray(a, 'P'); im.putpalette([0,0,0, 255,0,0, 0,255,0, 0,0,255]); im.save(')" +
                                           (tmp / "p.png").string() + R"(')
)", tmp.path()));
  auto labels = io::read_label_map(tmp / "p.png");
  auto expected = (torch::arange(42) % 4).reshape({6, 7}).to(torch::kByte);
  EXPECT_TRUE(torch::equal(labels.pixels, expected));
}

// A palette whose colours are grey decodes to grey levels (index 1 as 255): the labels are its
// indices all the same.
TEST(ImageIo, GreyPalettePngLabelMapGivesIndicesToo) {
  ScratchDir tmp;
  std::string indices(6 * 7, '\0');
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<char>(i % 3);
  std::string png = seg::testing::png_file(7, 6, 3, indices);
  const std::string grey{'\0', '\0', '\0', '\xff', '\xff', '\xff', '\x80', '\x80', '\x80'};
  png.insert(8 + 25, seg::testing::png_chunk("PLTE", grey));  // after the signature and IHDR
  seg::write_file_atomically(tmp / "grey.png", png);
  const auto labels = io::read_label_map(tmp / "grey.png");
  EXPECT_TRUE(torch::equal(labels.pixels, (torch::arange(42) % 3).reshape({6, 7}).to(torch::kByte)));
}

// A NIfTI spacing of 0 or NaN is refused: ITK would read it as 1 mm, and distances in mm
// would be made up.
TEST(ImageIo, NiftiWithoutAPixelSpacingIsRefused) {
  ScratchDir tmp;
  for (const float bad : {0.0f, std::numeric_limits<float>::quiet_NaN()}) {
    write_nifti_volume(tmp / "flat.nii", 4, 4, 1);
    std::string bytes = seg::read_file(tmp / "flat.nii");
    std::memcpy(bytes.data() + 84, &bad, 4);  // pixdim[2]
    seg::write_file_atomically(tmp / "flat.nii", bytes);
    const std::string error = error_of([&] { io::read_label_map(tmp / "flat.nii"); });
    EXPECT_TRUE(contains(error, "pixdim[2] (the pixel spacing)")) << error;
  }
}

TEST(ImageIo, LabelMapsMustBeSmallIntegers) {
  ScratchDir tmp;
  io::write_image(tmp / "big.png", image_of(torch::full({3, 3}, 300, torch::kInt), "uint16"));
  auto message = error_of([&] { io::read_label_map(tmp / "big.png"); });
  EXPECT_TRUE(contains(message, "big.png") && contains(message, "300")) << message;
  io::write_image(tmp / "frac.nii.gz", image_of(torch::full({3, 3}, 1.5f), "float"));
  message = error_of([&] { io::read_label_map(tmp / "frac.nii.gz"); });
  EXPECT_TRUE(contains(message, "frac.nii.gz") && contains(message, "non-integer")) << message;
  io::write_image(tmp / "int.nii.gz", image_of(torch::full({3, 3}, 4, torch::kShort), "int16"));
  auto ok = io::read_label_map(tmp / "int.nii.gz");
  EXPECT_EQ(ok.pixels.scalar_type(), torch::kByte);
  EXPECT_EQ(ok.pixels.sum().item<int>(), 36);
}

TEST(ImageIo, BadFilesNameThePathAndTheFix) {
  ScratchDir tmp;
  auto message = error_of([&] { io::read_image(tmp / "missing.png"); });
  EXPECT_TRUE(contains(message, "missing.png: no such file")) << message;
  std::filesystem::create_directories(tmp / "folder.png");
  message = error_of([&] { io::read_image(tmp / "folder.png"); });
  EXPECT_TRUE(contains(message, "is a folder")) << message;
  seg::write_file_atomically(tmp / "a.xyz", "abc");
  message = error_of([&] { io::read_image(tmp / "a.xyz"); });
  EXPECT_TRUE(contains(message, "a.xyz: unsupported file type")) << message;

  io::write_image(tmp / "good.png", image_of(torch::randint(0, 256, {64, 64}, torch::kByte), "uint8"));
  io::write_image(tmp / "good.nii.gz", image_of(torch::randint(0, 256, {64, 64}, torch::kByte), "uint8"));
  for (const std::string name : {"good.png", "good.nii.gz"}) {
    const auto bytes = seg::read_file(tmp / name);
    const std::string cut = "cut_" + name;
    seg::write_file_atomically(tmp / cut, bytes.substr(0, bytes.size() / 2));
    message = error_of([&] { io::read_image(tmp / cut); });
    EXPECT_TRUE(contains(message, cut)) << name << ": " << message;
    seg::write_file_atomically(tmp / ("junk_" + name), "this is not an image at all");
    message = error_of([&] { io::read_image(tmp / ("junk_" + name)); });
    EXPECT_TRUE(contains(message, "junk_" + name)) << message;
  }
}

TEST(ImageIo, OneSliceVolumesAreImagesButStacksAreNot) {
  ScratchDir tmp;
  write_nifti_volume(tmp / "one.nii", 5, 4, 1);
  auto image = io::read_image(tmp / "one.nii");
  EXPECT_EQ(image.height(), 4);
  EXPECT_EQ(image.width(), 5);
  EXPECT_EQ(image.pixels[1][2].item<int>(), 7);  // row 1, column 2 = element 1 * 5 + 2
  write_nifti_volume(tmp / "three.nii", 5, 4, 3);
  const auto message = error_of([&] { io::read_image(tmp / "three.nii"); });
  EXPECT_TRUE(contains(message, "three.nii") && contains(message, "3 slices")) << message;
}

TEST(ImageIo, FailedWriteLeavesNothing) {
  ScratchDir tmp;
  auto floats = image_of(torch::rand({4, 4}), "float32");
  const auto message = error_of([&] { io::write_image(tmp / "f.png", floats); });
  EXPECT_TRUE(contains(message, "f.png") && contains(message, ".nii.gz")) << message;
  EXPECT_THROW(io::write_image(tmp / "neg.png", image_of(torch::full({2, 2}, -5, torch::kShort), "int16")), seg::Error);
  EXPECT_THROW(io::write_image(tmp / "a.dcm", image_of(torch::zeros({2, 2}, torch::kByte), "uint8")), seg::Error);
  EXPECT_THROW(io::write_image(tmp / "nodir" / "a.png", image_of(torch::zeros({2, 2}, torch::kByte), "uint8")), seg::Error);
  EXPECT_TRUE(list_files(tmp.path()).empty());
}

TEST(ImageIo, ResizeAveragesImagesAndPicksCentresForLabels) {
  auto image = image_of(torch::arange(16, torch::kFloat).reshape({4, 4}), "float32");
  image.geometry.spacing = {0.5, 0.5};
  image.geometry.has_spacing = true;
  auto small = io::resize_image(image, 2, 2);
  // Area average of each 2x2 block: (0+1+4+5)/4 = 2.5 ...
  EXPECT_TRUE(torch::allclose(small.pixels, torch::tensor({{2.5f, 4.5f}, {10.5f, 12.5f}})));
  EXPECT_DOUBLE_EQ(small.geometry.spacing[0], 1.0);
  EXPECT_DOUBLE_EQ(small.geometry.origin[0], 0.25);  // centre of the first 2x2 block
  auto large = io::resize_image(image_of(torch::tensor({{0, 100}}, torch::kByte), "uint8"), 1, 4);
  EXPECT_EQ(large.pixels[0][0].item<int>(), 0);
  EXPECT_EQ(large.pixels[0][3].item<int>(), 100);
  EXPECT_GT(large.pixels[0][1].item<int>(), 0);  // bilinear in between

  auto labels = image_of(torch::arange(64, torch::kByte).reshape({8, 8}), "uint8");
  auto picked = io::resize_label_map(labels, 2, 2);
  // Factor 4: mask[2::4, 2::4] -> elements (2,2), (2,6), (6,2), (6,6).
  EXPECT_TRUE(torch::equal(picked.pixels, torch::tensor({{18, 22}, {50, 54}}, torch::kByte)));
}

// DICOM through ITK: 16-bit pixels as stored; MONOCHROME1 films (stored as the negative, as
// many CR and DR systems write them) come back positive, within the stored bits' range
// (ITK 5.2's GDCMImageIO does it; the test guards against a release that stops).
TEST(ImageIo, ReadsDicomAndTurnsMonochrome1Round) {
  ScratchDir tmp;
  const auto stored = (torch::arange(128, torch::kInt) * 32 + 7).reshape({8, 16});  // 7 .. 4071
  seg::testing::write_dicom(tmp / "m2.dcm", stored, "MONOCHROME2");
  seg::testing::write_dicom(tmp / "m1.dcm", stored, "MONOCHROME1");
  const auto plain = io::read_image(tmp / "m2.dcm");
  EXPECT_EQ(plain.pixel_type, "uint16");
  ASSERT_EQ(plain.pixels.sizes(), stored.sizes());
  EXPECT_TRUE(torch::equal(plain.pixels, stored));
  const auto negative = io::read_image(tmp / "m1.dcm");
  EXPECT_EQ(negative.pixel_type, "uint16");
  EXPECT_TRUE(torch::equal(negative.pixels, 4095 - stored)) << negative.pixels;
}

TEST(ImageIo, CaseIdsAndExtensions) {
  EXPECT_EQ(io::case_id_of("/x/JPCLN001.nii.gz"), "JPCLN001");
  EXPECT_EQ(io::case_id_of("JPCLN001.png"), "JPCLN001");
  EXPECT_EQ(io::case_id_of("a.b.PNG"), "a.b");
  EXPECT_TRUE(io::is_image_path("a.NII.GZ"));
  EXPECT_TRUE(io::is_image_path("a.dcm"));
  EXPECT_FALSE(io::is_image_path("a.txt"));
  EXPECT_FALSE(io::is_image_path("dataset.json"));
}
