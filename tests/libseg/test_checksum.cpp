// seg::crc32 and seg::Sha256 against published test vectors, and the CRC's eight-byte path
// against the plain bit-by-bit definition.
#include <seg/checksum.h>

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace {

// CRC-32 one bit at a time, straight from the definition (reflected polynomial 0xEDB88320).
uint32_t crc32_bitwise(const std::string& bytes) {
  uint32_t crc = 0xffffffffu;
  for (const char c : bytes) {
    crc ^= static_cast<uint8_t>(c);
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1u) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
  }
  return ~crc;
}

uint32_t crc32_of(const std::string& bytes) { return seg::crc32(bytes.data(), bytes.size()); }

std::string sha256_of(const std::string& bytes) { return seg::Sha256().update(bytes).hex_digest(); }

}  // namespace

TEST(Crc32, MatchesTheCheckValuesOfZip) {
  EXPECT_EQ(crc32_of(""), 0x00000000u);
  EXPECT_EQ(crc32_of("a"), 0xe8b7be43u);
  EXPECT_EQ(crc32_of("123456789"), 0xcbf43926u);  // the CRC catalogue's check value
  EXPECT_EQ(crc32_of("The quick brown fox jumps over the lazy dog"), 0x414fa339u);
}

TEST(Crc32, EightBytesAtATimeAgreeWithTheBitwiseDefinitionAtEveryLengthAndAlignment) {
  std::mt19937 random(7);
  std::string bytes(300, '\0');
  for (auto& c : bytes) c = static_cast<char>(random());
  for (size_t start = 0; start < 9; ++start)
    for (size_t length = 0; start + length <= bytes.size(); length += 1 + length / 8) {
      const std::string piece = bytes.substr(start, length);
      ASSERT_EQ(crc32_of(piece), crc32_bitwise(piece)) << "start " << start << ", length " << length;
    }
}

TEST(Crc32, ContinuesFromAnEarlierValue) {
  const std::string a = "torch.save writes ", b = "uncompressed records";
  EXPECT_EQ(seg::crc32(b.data(), b.size(), crc32_of(a)), crc32_of(a + b));
}

// FIPS 180-2, appendix B (and the empty message).
TEST(Sha256, MatchesTheFips180Vectors) {
  EXPECT_EQ(sha256_of(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  seg::Sha256 million;
  const std::string thousand(1000, 'a');
  for (int i = 0; i < 1000; ++i) million.update(thousand);
  EXPECT_EQ(million.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, GivesTheSameDigestHoweverTheBytesArePieced) {
  std::string bytes(1000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 31 + 7);
  const std::string whole = sha256_of(bytes);
  for (const size_t piece : {1u, 3u, 55u, 56u, 63u, 64u, 65u, 127u}) {
    seg::Sha256 sha;
    for (size_t at = 0; at < bytes.size(); at += piece) sha.update(bytes.substr(at, piece));
    EXPECT_EQ(sha.hex_digest(), whole) << "pieces of " << piece;
  }
  // Messages whose padding just fits in their last block, or just does not.
  EXPECT_EQ(sha256_of(std::string(55, 'a')), "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(sha256_of(std::string(56, 'a')), "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
}
