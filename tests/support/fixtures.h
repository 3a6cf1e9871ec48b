#pragma once
// Small helpers and generated fixtures that several test files share.
#include <seg/dataset.h>
#include <seg/error.h>
#include <seg/image.h>
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace seg::testing {

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The message of the seg::Error that `f` throws, or "" when it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const seg::Error& e) {
    return e.what();
  }
  return "";
}

// An image of `pixels` (made contiguous) with the stored pixel type's name, default geometry.
inline seg::Image image_of(const at::Tensor& pixels, const std::string& pixel_type) {
  seg::Image image;
  image.pixels = pixels.contiguous();
  image.pixel_type = pixel_type;
  return image;
}

// A random uint8 data set in memory: cases "a", "b", ... of height x width, labels
// 0..classes-1, the first `train` cases in split "train", the rest in "test".
inline seg::Dataset random_dataset(const std::string& name, int64_t cases, int64_t height, int64_t width,
                                   int classes, int64_t train) {
  seg::Dataset d;
  d.name = name;
  d.source = "memory";
  d.images = torch::randint(0, 256, {cases, height, width}, torch::kByte);
  d.labels = torch::randint(0, classes, {cases, height, width}, torch::kByte);
  for (int64_t i = 0; i < cases; ++i) d.cases.push_back(std::string(1, static_cast<char>('a' + i)));
  d.classes = seg::ClassTable::numbered(classes);
  d.splits["train"] = {d.cases.begin(), d.cases.begin() + train};
  if (train < cases) d.splits["test"] = {d.cases.begin() + train, d.cases.end()};
  return d;
}

// A DICOM file (Part 10, explicit VR little endian, CR) of 16-bit unsigned pixels, written
// by hand so the tests need no DICOM writer (ITK's cannot write MONOCHROME1). `pixels`:
// H x W integers within 0 .. 2^bits_stored - 1; `photometric`: "MONOCHROME1" or "MONOCHROME2".
inline void write_dicom(const std::filesystem::path& path, const at::Tensor& pixels, const std::string& photometric,
                        int bits_stored = 12) {
  const auto u16 = [](std::string& to, uint32_t v) {
    to.push_back(static_cast<char>(v & 0xff));
    to.push_back(static_cast<char>(v >> 8 & 0xff));
  };
  const auto u32 = [&](std::string& to, uint32_t v) { u16(to, v & 0xffff), u16(to, v >> 16); };
  const auto us = [&](uint32_t v) { std::string s; u16(s, v); return s; };
  // An element with a 16-bit length (explicit VR); values padded to even length.
  const auto element = [&](std::string& to, uint32_t group, uint32_t number, const std::string& vr, std::string value) {
    if (value.size() % 2) value.push_back(vr == "UI" ? '\0' : ' ');
    u16(to, group), u16(to, number), to += vr, u16(to, static_cast<uint32_t>(value.size())), to += value;
  };
  // An element with a 32-bit length (OB, OW): two reserved bytes after the VR.
  const auto long_element = [&](std::string& to, uint32_t group, uint32_t number, const std::string& vr, const std::string& value) {
    u16(to, group), u16(to, number), to += vr, u16(to, 0), u32(to, static_cast<uint32_t>(value.size())), to += value;
  };
  const std::string sop_class = "1.2.840.10008.5.1.4.1.1.1", instance = "1.2.826.0.1.3680043.2.1125.1";
  std::string meta;
  long_element(meta, 0x0002, 0x0001, "OB", std::string("\0\1", 2));
  element(meta, 0x0002, 0x0002, "UI", sop_class);
  element(meta, 0x0002, 0x0003, "UI", instance);
  element(meta, 0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1");
  element(meta, 0x0002, 0x0012, "UI", "1.2.826.0.1.3680043.2.1125");
  std::string out(128, '\0');
  out += "DICM";
  element(out, 0x0002, 0x0000, "UL", [&] { std::string s; u32(s, static_cast<uint32_t>(meta.size())); return s; }());
  out += meta;
  element(out, 0x0008, 0x0016, "UI", sop_class);
  element(out, 0x0008, 0x0018, "UI", instance);
  element(out, 0x0008, 0x0060, "CS", "CR");
  element(out, 0x0028, 0x0002, "US", us(1));
  element(out, 0x0028, 0x0004, "CS", photometric);
  element(out, 0x0028, 0x0010, "US", us(static_cast<uint32_t>(pixels.size(0))));
  element(out, 0x0028, 0x0011, "US", us(static_cast<uint32_t>(pixels.size(1))));
  element(out, 0x0028, 0x0030, "DS", "0.175\\0.175");
  element(out, 0x0028, 0x0100, "US", us(16));
  element(out, 0x0028, 0x0101, "US", us(static_cast<uint32_t>(bits_stored)));
  element(out, 0x0028, 0x0102, "US", us(static_cast<uint32_t>(bits_stored - 1)));
  element(out, 0x0028, 0x0103, "US", us(0));
  const auto values = pixels.to(torch::kInt).contiguous();
  std::string data;
  for (int64_t i = 0; i < values.numel(); ++i) u16(data, static_cast<uint32_t>(values.data_ptr<int32_t>()[i]));
  long_element(out, 0x7fe0, 0x0010, "OW", data);
  std::ofstream(path, std::ios::binary).write(out.data(), static_cast<std::streamsize>(out.size()));
}

}  // namespace seg::testing
