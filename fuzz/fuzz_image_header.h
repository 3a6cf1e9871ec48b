#pragma once
// What the fuzz_image_header target does with one input (also replayed by
// tests/io/test_fuzz_regressions.cpp): the plain-C++ header parsers, which need neither ITK,
// OpenCV nor LibTorch. The first byte picks the format (low 3 bits) and a small pixel cap
// (high bit). A header that is accepted must obey the checks: a finding aborts.
#include <seg/io/image_header.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "../io/src/image_header_parse.h"
#include "fuzz_support.h"

namespace seg::fuzz {

inline void image_header(const uint8_t* data, size_t size) {
  using io::detail::HeaderFormat;
  static const struct {
    const char* extension;
    HeaderFormat format;
  } kFormats[8] = {{".png", HeaderFormat::png},     {".jpg", HeaderFormat::jpeg},  {".tif", HeaderFormat::tiff},
                   {".bmp", HeaderFormat::bmp},     {".nii", HeaderFormat::nifti}, {".nii.gz", HeaderFormat::nifti},
                   {".nrrd", HeaderFormat::nrrd},   {".mha", HeaderFormat::meta}};
  if (size < 1) return;
  const auto& chosen = kFormats[data[0] & 7];
  io::ReadLimits limits;
  if (data[0] & 0x80) limits.max_pixels = 4096;
  const auto path = write_input(std::string("header") + chosen.extension, data + 1, size - 1);
  expect_rejection_or_success([&] {
    const io::ImageHeader header = io::detail::parse_image_header(path, chosen.format, limits);
    const bool within_limits = header.width >= 1 && header.height >= 1 && header.channels >= 1 && header.channels <= 4 &&
                               header.width <= limits.max_pixels / header.height && !header.pixel_type.empty();
    if (!within_limits) std::abort();
  });
}

}  // namespace seg::fuzz
