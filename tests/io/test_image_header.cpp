// read_image_header: what it refuses before any pixel is read, that read_image refuses the
// same, that it agrees with read_image on good files, and that a lying header costs no memory.
#include <seg/error.h>
#include <seg/fs.h>
#include <seg/io/image_header.h>
#include <seg/io/image_io.h>
#include <torch/torch.h>

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>

#include "fixtures.h"
#include "image_bytes.h"
#include "test_support.h"

namespace fs = std::filesystem;
namespace io = seg::io;
using seg::testing::contains;
using seg::testing::error_of;
using seg::testing::image_of;
using seg::testing::ScratchDir;

namespace {

// Sets the process-wide pixel cap for one test and restores the default after it.
class DefaultPixelLimit {
 public:
  explicit DefaultPixelLimit(int64_t max_pixels) { io::set_default_read_limits({max_pixels}); }
  ~DefaultPixelLimit() { io::set_default_read_limits({io::kDefaultMaxPixels}); }
  DefaultPixelLimit(const DefaultPixelLimit&) = delete;
  DefaultPixelLimit& operator=(const DefaultPixelLimit&) = delete;
};

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string without_last(const std::string& bytes, size_t count) { return bytes.substr(0, bytes.size() - count); }

std::string random_bytes(size_t count) {
  const auto values = torch::randint(0, 256, {static_cast<int64_t>(count)}, torch::kByte);
  return std::string(reinterpret_cast<const char*>(values.data_ptr<uint8_t>()), count);
}

// A file written by io::write_image (random uint8 pixels) and read back as bytes.
std::string written_by_us(const fs::path& dir, const std::string& name, int64_t height = 48, int64_t width = 40) {
  io::write_image(dir / name, image_of(torch::randint(0, 256, {height, width}, torch::kByte), "uint8"));
  return seg::read_file(dir / name);
}

// A bad file: `make` writes it (and any file beside it) into the folder and returns its path.
struct BadFile {
  std::string name;
  std::function<fs::path(const fs::path& dir)> make;
  std::string message;          // what the error says
  bool refused_by_header = true;  // false: the header is sound, the pixels are refused
  int64_t max_pixels = io::kDefaultMaxPixels;
};
// ctest and gtest name a failing case by this, not by the struct's bytes.
void PrintTo(const BadFile& file, std::ostream* out) { *out << file.name; }

std::vector<BadFile> bad_files() {
  std::vector<BadFile> cases;
  cases.push_back({"NrrdLyingAboutItsSize", [](const fs::path& d) {
                     write_bytes(d / "lie.nrrd", "NRRD0004\ntype: uint8\ndimension: 2\nsizes: 8000 8000\nencoding: raw\n\n" +
                                                     std::string(100, '\0'));
                     return d / "lie.nrrd";
                   },
                   "is truncated: its header promises 64000000 bytes of pixel data but only 100"});
  cases.push_back({"GzipNrrdLyingAboutItsSize", [](const fs::path& d) {
                     write_bytes(d / "lie.nrrd", "NRRD0004\ntype: uint8\ndimension: 2\nsizes: 8000 8000\nencoding: gzip\n\n" +
                                                     seg::testing::gzipped(random_bytes(2000)));
                     return d / "lie.nrrd";
                   },
                   "compressed bytes can hold"});
  cases.push_back({"NiftiGzLyingAboutItsSize", [](const fs::path& d) {
                     const std::string header = seg::testing::nifti1_header({8000, 8000}, 2, 8);
                     write_bytes(d / "lie.nii.gz", seg::testing::gzipped(header + random_bytes(3000)));
                     return d / "lie.nii.gz";
                   },
                   "compressed bytes can hold"});
  cases.push_back({"NiftiGzCutShort", [](const fs::path& d) {
                     const std::string bytes = written_by_us(d, "whole.nii.gz", 64, 64);
                     write_bytes(d / "cut.nii.gz", bytes.substr(0, bytes.size() * 2 / 3));
                     return d / "cut.nii.gz";
                   },
                   "is truncated"});
  cases.push_back({"PngWithoutIend", [](const fs::path& d) {
                     write_bytes(d / "cut.png", without_last(written_by_us(d, "whole.png"), 12));
                     return d / "cut.png";
                   },
                   "is truncated: it ends without the IEND chunk"});
  cases.push_back({"JpegWithoutEndMarker", [](const fs::path& d) {
                     write_bytes(d / "cut.jpg", without_last(written_by_us(d, "whole.jpg"), 2));
                     return d / "cut.jpg";
                   },
                   "is truncated: it ends without the JPEG end-of-image marker"});
  cases.push_back({"BmpCutShort", [](const fs::path& d) {
                     write_bytes(d / "cut.bmp", without_last(written_by_us(d, "whole.bmp"), 100));
                     return d / "cut.bmp";
                   },
                   "is truncated"});
  cases.push_back({"TiffStripPastTheEnd", [](const fs::path& d) {
                     write_bytes(d / "cut.tif", without_last(seg::testing::tiff_file(40, 30, 1, 0, random_bytes(1200)), 10));
                     return d / "cut.tif";
                   },
                   "is truncated: a strip or tile of its pixel data runs past the end of the file"});
  cases.push_back({"RawNiftiCutShort", [](const fs::path& d) {
                     write_bytes(d / "cut.nii", seg::testing::nifti1_header({40, 30}, 2, 8) + random_bytes(1000));
                     return d / "cut.nii";
                   },
                   "is truncated: its header promises 1552 bytes of pixel data but only 1352"});
  cases.push_back({"RawMetaImageCutShort", [](const fs::path& d) {
                     write_bytes(d / "cut.mha", "ObjectType = Image\nNDims = 2\nDimSize = 20 10\nElementType = MET_SHORT\n"
                                                "ElementDataFile = LOCAL\n" + std::string(300, '\0'));
                     return d / "cut.mha";
                   },
                   "is truncated: its header promises 400 bytes of pixel data but only 300"});
  cases.push_back({"CompressedMetaImageCutShort", [](const fs::path& d) {
                     const std::string bytes = written_by_us(d, "whole.mha", 64, 64);
                     write_bytes(d / "cut.mha", without_last(bytes, 40));
                     return d / "cut.mha";
                   },
                   "is truncated"});
  cases.push_back({"DetachedNrrdDataShort", [](const fs::path& d) {
                     write_bytes(d / "short.nhdr", "NRRD0004\ntype: uint8\ndimension: 2\nsizes: 20 10\nencoding: raw\n"
                                                   "data file: short.raw\n");
                     write_bytes(d / "short.raw", std::string(150, '\0'));
                     return d / "short.nhdr";
                   },
                   "short.raw: is truncated: its header promises 200 bytes of pixel data but only 150"});
  cases.push_back({"DetachedNrrdDataMissing", [](const fs::path& d) {
                     write_bytes(d / "alone.nhdr", "NRRD0004\ntype: uint8\ndimension: 2\nsizes: 20 10\nencoding: raw\n"
                                                   "data file: alone.raw\n");
                     return d / "alone.nhdr";
                   },
                   "alone.raw: is missing (the pixel data of"});
  cases.push_back({"VolumeOfTwoSlices", [](const fs::path& d) {
                     write_bytes(d / "stack.nii", seg::testing::nifti1_header({5, 4, 2}, 2, 8) + random_bytes(40));
                     return d / "stack.nii";
                   },
                   "is a 3D volume (5 x 4 x 2, 2 slices); only 2D images (or a single slice) are supported"});
  cases.push_back({"FourDimensions", [](const fs::path& d) {
                     write_bytes(d / "series.nii", seg::testing::nifti1_header({4, 3, 2, 2}, 2, 8) + random_bytes(48));
                     return d / "series.nii";
                   },
                   "has 4 dimensions (4 x 3 x 2 x 2); only 2D images (or a single slice) are supported"});
  cases.push_back({"FiveValuesPerPixel", [](const fs::path& d) {
                     write_bytes(d / "vector.nrrd", "NRRD0004\ntype: float\ndimension: 3\nsizes: 5 4 3\nkinds: vector domain domain\n"
                                                    "encoding: raw\n\n" + std::string(240, '\0'));
                     return d / "vector.nrrd";
                   },
                   "has 5 values per pixel"});
  cases.push_back({"MorePixelsThanTheCap", [](const fs::path& d) {
                     write_bytes(d / "big.png", seg::testing::png_file(20, 10, 0, random_bytes(200)));
                     return d / "big.png";
                   },
                   "declares 10 x 20 = 200 pixels, more than the limit of 100; if the image is genuine, raise the limit "
                   "with --max-pixels",
                   true, 100});
  // GDCM asserts (aborting the process) on these; they must be one clear error instead.
  cases.push_back({"DicomPreambleAlone", [](const fs::path& d) {
                     write_bytes(d / "bare.dcm", std::string(128, '\0') + "DICM");
                     return d / "bare.dcm";
                   },
                   "is not a readable DICOM file"});
  cases.push_back({"DicomWithoutPixelData", [](const fs::path& d) {
                     write_bytes(d / "empty.dcm", std::string(128, '\0') + "DICM" + std::string("\x02\x00\x10\x00UI\x04\x00", 8) + "abcd");
                     return d / "empty.dcm";
                   },
                   "is a DICOM file without pixel data"});
  cases.push_back({"GreyAlphaWithTransparency", [](const fs::path& d) {
                     std::string samples;
                     for (int i = 0; i < 12; ++i) samples += std::string{static_cast<char>(60 + i), static_cast<char>(i == 5 ? 0 : 255)};
                     write_bytes(d / "alpha.png", seg::testing::png_file(4, 3, 4, samples));
                     return d / "alpha.png";
                   },
                   "has transparency (an alpha channel that is not opaque); flatten it or pass --gray", false});
  return cases;
}

class BadImageFile : public ::testing::TestWithParam<BadFile> {};

}  // namespace

// The header check refuses each file with its reason (naming the file), before any pixel is
// read; read_image and read_label_map give the same error.
TEST_P(BadImageFile, IsRefusedWithTheReason) {
  const BadFile& bad = GetParam();
  ScratchDir tmp;
  const fs::path path = bad.make(tmp.path());
  const DefaultPixelLimit limit(bad.max_pixels);
  const std::string from_header = error_of([&] { io::read_image_header(path); });
  if (bad.refused_by_header) {
    EXPECT_TRUE(contains(from_header, bad.message)) << from_header;
    EXPECT_TRUE(contains(from_header, path.parent_path().string())) << from_header;
  } else {
    EXPECT_EQ(from_header, "");
  }
  const std::string from_read = error_of([&] { io::read_image(path); });
  EXPECT_TRUE(contains(from_read, bad.message)) << from_read;
  EXPECT_TRUE(contains(from_read, path.parent_path().string())) << from_read;
  const std::string from_labels = error_of([&] { io::read_label_map(path); });
  EXPECT_TRUE(contains(from_labels, bad.message)) << from_labels;
}

INSTANTIATE_TEST_SUITE_P(ImageHeader, BadImageFile, ::testing::ValuesIn(bad_files()),
                         [](const ::testing::TestParamInfo<BadFile>& info) { return info.param.name; });

namespace {

// A good file and what it holds.
struct GoodFile {
  std::string name;
  std::function<fs::path(const fs::path& dir)> make;
  int channels;
};
void PrintTo(const GoodFile& file, std::ostream* out) { *out << file.name; }

fs::path written(const fs::path& dir, const std::string& name, const at::Tensor& pixels, const std::string& type) {
  io::write_image(dir / name, image_of(pixels, type));
  return dir / name;
}

std::vector<GoodFile> good_files() {
  const auto bytes = [] { return torch::randint(0, 256, {37, 23}, torch::kByte); };
  const auto wide = [] { return torch::randint(0, 65536, {37, 23}, torch::kInt); };
  const auto shorts = [] { return torch::randint(-1000, 1000, {37, 23}, torch::kShort); };
  const auto floats = [] { return torch::rand({37, 23}); };
  std::vector<GoodFile> cases;
  cases.push_back({"Png8", [=](const fs::path& d) { return written(d, "a.png", bytes(), "uint8"); }, 1});
  cases.push_back({"Png16", [=](const fs::path& d) { return written(d, "a.png", wide(), "uint16"); }, 1});
  cases.push_back({"Jpeg", [=](const fs::path& d) { return written(d, "a.jpg", bytes(), "uint8"); }, 1});
  cases.push_back({"Tiff8", [=](const fs::path& d) { return written(d, "a.tif", bytes(), "uint8"); }, 1});
  cases.push_back({"Tiff16", [=](const fs::path& d) { return written(d, "a.tiff", wide(), "uint16"); }, 1});
  cases.push_back({"Bmp", [=](const fs::path& d) { return written(d, "a.bmp", bytes(), "uint8"); }, 1});
  cases.push_back({"Nifti", [=](const fs::path& d) { return written(d, "a.nii", shorts(), "int16"); }, 1});
  cases.push_back({"NiftiGz", [=](const fs::path& d) { return written(d, "a.nii.gz", wide(), "uint16"); }, 1});
  cases.push_back({"NiftiGzFloat", [=](const fs::path& d) { return written(d, "a.nii.gz", floats(), "float32"); }, 1});
  cases.push_back({"Nrrd", [=](const fs::path& d) { return written(d, "a.nrrd", floats(), "float32"); }, 1});
  cases.push_back({"DetachedNrrd", [=](const fs::path& d) { return written(d, "a.nhdr", shorts(), "int16"); }, 1});
  cases.push_back({"MetaImage", [=](const fs::path& d) { return written(d, "a.mha", bytes(), "uint8"); }, 1});
  cases.push_back({"DetachedMetaImage", [=](const fs::path& d) { return written(d, "a.mhd", wide(), "uint16"); }, 1});
  cases.push_back({"Dicom", [](const fs::path& d) {
                     seg::testing::write_dicom(d / "a.dcm", torch::randint(0, 4096, {37, 23}, torch::kInt), "MONOCHROME2");
                     return d / "a.dcm";
                   },
                   1});
  cases.push_back({"DicomWithoutExtension", [](const fs::path& d) {
                     seg::testing::write_dicom(d / "film", torch::randint(0, 4096, {37, 23}, torch::kInt), "MONOCHROME1");
                     return d / "film";
                   },
                   1});
  cases.push_back({"RawNiftiByHand", [](const fs::path& d) {
                     write_bytes(d / "h.nii", seg::testing::nifti1_header({23, 37, 1, 1}, 16, 32) + std::string(37 * 23 * 4, '\0'));
                     return d / "h.nii";
                   },
                   1});
  cases.push_back({"ColourPng", [](const fs::path& d) {
                     write_bytes(d / "rgb.png", seg::testing::png_file(23, 37, 2, random_bytes(23 * 37 * 3)));
                     return d / "rgb.png";
                   },
                   3});
  cases.push_back({"OpaqueGreyAlphaPng", [](const fs::path& d) {
                     std::string samples;
                     for (int i = 0; i < 23 * 37; ++i) samples += std::string{static_cast<char>(i % 251), static_cast<char>(255)};
                     write_bytes(d / "la.png", seg::testing::png_file(23, 37, 4, samples));
                     return d / "la.png";
                   },
                   2});
  cases.push_back({"RgbaTiff", [](const fs::path& d) {
                     write_bytes(d / "rgba.tif", seg::testing::tiff_file(23, 37, 4, 1, random_bytes(23 * 37 * 4)));
                     return d / "rgba.tif";
                   },
                   4});
  return cases;
}

class GoodImageFile : public ::testing::TestWithParam<GoodFile> {};

}  // namespace

// The header says what read_image then reads: the size, the pixel type, and whether the
// format carries a spacing; the channels are those the file was made with.
TEST_P(GoodImageFile, HeaderAgreesWithTheImageRead) {
  const GoodFile& good = GetParam();
  ScratchDir tmp;
  const fs::path path = good.make(tmp.path());
  const io::ImageHeader header = io::read_image_header(path);
  io::ReadOptions options;
  options.to_gray = true;
  const seg::Image image = io::read_image(path, options);
  EXPECT_EQ(header.height, image.height());
  EXPECT_EQ(header.width, image.width());
  EXPECT_EQ(header.height, 37);
  EXPECT_EQ(header.width, 23);
  EXPECT_EQ(header.pixel_type, image.pixel_type);
  EXPECT_EQ(header.has_spacing, image.geometry.has_spacing);
  EXPECT_EQ(header.channels, good.channels);
  EXPECT_FALSE(header.format.empty());
}

INSTANTIATE_TEST_SUITE_P(ImageHeader, GoodImageFile, ::testing::ValuesIn(good_files()),
                         [](const ::testing::TestParamInfo<GoodFile>& info) { return info.param.name; });

TEST(ImageHeader, LimitsComeFromTheCallOrTheProcessDefault) {
  ScratchDir tmp;
  const fs::path path = written(tmp.path(), "a.png", torch::zeros({30, 20}, torch::kByte), "uint8");
  io::ReadLimits small;
  small.max_pixels = 599;
  EXPECT_TRUE(contains(error_of([&] { io::read_image_header(path, small); }), "more than the limit of 599"));
  small.max_pixels = 600;
  EXPECT_EQ(io::read_image_header(path, small).height, 30);
  {
    const DefaultPixelLimit limit(599);
    EXPECT_EQ(io::ReadLimits{}.max_pixels, 599);
    EXPECT_THROW(io::read_image(path), seg::Error);
  }
  EXPECT_EQ(io::ReadLimits{}.max_pixels, io::kDefaultMaxPixels);
  EXPECT_EQ(io::read_image(path).height(), 30);
  EXPECT_THROW(io::set_default_read_limits({0}), seg::UsageError);
}

namespace {

// Runs `body` in a child process whose address space may grow by at most `headroom` bytes
// beyond what it has at the start, and returns what happened there: "error: <message>" for a
// seg::Error, "other: <message>" for any other exception, "read" for none.
std::string outcome_within_memory(const std::function<void()>& body, uint64_t headroom) {
  int pipe_ends[2];
  if (::pipe(pipe_ends) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipe_ends[0]);
    std::string outcome;
    uint64_t pages = 0;
    std::ifstream("/proc/self/statm") >> pages;
    const rlim_t cap = pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)) + headroom;
    const rlimit limit{cap, cap};
    ::setrlimit(RLIMIT_AS, &limit);
    torch::set_num_threads(1);  // the parent's OpenMP team does not exist in a forked child
    try {
      body();
      outcome = "read";
    } catch (const seg::Error& e) {
      outcome = std::string("error: ") + e.what();
    } catch (const std::exception& e) {
      outcome = std::string("other: ") + e.what();
    }
    if (::write(pipe_ends[1], outcome.data(), outcome.size()) < 0) ::_exit(2);
    ::_exit(0);
  }
  ::close(pipe_ends[1]);
  std::string outcome;
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipe_ends[0], buffer, sizeof buffer)) > 0;) outcome.append(buffer, static_cast<size_t>(n));
  ::close(pipe_ends[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) outcome += " (the child died of signal " + std::to_string(WTERMSIG(status)) + ")";
  return outcome;
}

}  // namespace

// A lying header costs no memory: reading fails cleanly with 128 MiB of address space to
// spare, where allocating what the header declares (or inflating the payload whole) needs
// far more.
TEST(ImageHeader, LyingHeadersAreRefusedWithoutALargeAllocation) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space: no address-space limit can be set";
#endif
  ScratchDir tmp;
  // 174 bytes that declare 40000 x 40000 pixels (1.6 GB).
  const std::string nrrd = "NRRD0004\n# 40000 x 40000 bytes promised, 76 given\ntype: uint8\ndimension: 2\n"
                           "sizes: 40000 40000\nencoding: raw\n\n";
  write_bytes(tmp / "huge.nrrd", nrrd + std::string(174 - nrrd.size(), '\0'));
  ASSERT_EQ(fs::file_size(tmp / "huge.nrrd"), 174u);
  // A gzip'd NIfTI declaring 14000 x 14000 float32 (784 MB) whose 200 kB of compressed zeros
  // expand to about 200 MB: both too much to hold within the limit.
  {
    gzFile out = gzopen((tmp / "lie.nii.gz").c_str(), "wb9");
    const std::string header = seg::testing::nifti1_header({14000, 14000}, 16, 32);
    gzwrite(out, header.data(), static_cast<unsigned>(header.size()));
    const std::string zeros(1 << 20, '\0');
    for (int i = 0; i < 200; ++i) gzwrite(out, zeros.data(), static_cast<unsigned>(zeros.size()));
    gzclose(out);
  }
  ASSERT_GT(fs::file_size(tmp / "lie.nii.gz"), 150000u);
  ASSERT_LT(fs::file_size(tmp / "lie.nii.gz"), 250000u);

  constexpr uint64_t kHeadroom = uint64_t{128} << 20;
  const std::string nrrd_outcome = outcome_within_memory([&] { io::read_image(tmp / "huge.nrrd"); }, kHeadroom);
  EXPECT_TRUE(contains(nrrd_outcome, "error: ") && contains(nrrd_outcome, "huge.nrrd") &&
              contains(nrrd_outcome, "more than the limit of 67108864"))
      << nrrd_outcome;
  // With the cap raised above the declared size, the compressed size alone refuses the file.
  const std::string nifti_outcome = outcome_within_memory(
      [&] {
        io::set_default_read_limits({int64_t{1} << 28});
        io::read_image(tmp / "lie.nii.gz");
      },
      kHeadroom);
  EXPECT_TRUE(contains(nifti_outcome, "error: ") && contains(nifti_outcome, "lie.nii.gz") &&
              contains(nifti_outcome, "compressed bytes can hold"))
      << nifti_outcome;
  // The same limit lets a genuine image of 2048 x 2048 through: the test measures the lie.
  io::write_image(tmp / "film.nii.gz", image_of(torch::randint(0, 4096, {2048, 2048}, torch::kShort), "int16"));
  EXPECT_EQ(outcome_within_memory([&] { io::read_image(tmp / "film.nii.gz"); }, kHeadroom), "read");
}
