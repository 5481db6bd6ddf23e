// Test-only writer of a FlexBuffer map of integers (the shape LCE writes),
// with every offset and value stored at `width` bytes. Keys must be sorted.
#ifndef BITLITE_CHECK_FLEXBUFFER_BUILDER_H_
#define BITLITE_CHECK_FLEXBUFFER_BUILDER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bitlite {

inline void PutUInt(std::vector<uint8_t>* b, uint64_t v, int width) {
  for (int i = 0; i < width; ++i) b->push_back(static_cast<uint8_t>(v >> (8 * i)));
}

inline std::vector<uint8_t> BuildIntMap(
    const std::vector<std::pair<std::string, int64_t>>& entries, int width) {
  const int log2w = width == 1 ? 0 : width == 2 ? 1 : width == 4 ? 2 : 3;
  std::vector<uint8_t> b;
  std::vector<size_t> key_pos;
  for (const auto& e : entries) {
    key_pos.push_back(b.size());
    b.insert(b.end(), e.first.begin(), e.first.end());
    b.push_back(0);
  }
  while (b.size() % width) b.push_back(0);
  PutUInt(&b, entries.size(), width);  // keys vector size
  const size_t keys = b.size();
  for (size_t i = 0; i < entries.size(); ++i) PutUInt(&b, b.size() - key_pos[i], width);
  const size_t header = b.size();
  PutUInt(&b, header - keys, width);  // offset back to the keys vector
  PutUInt(&b, width, width);          // keys byte width
  PutUInt(&b, entries.size(), width);
  const size_t values = b.size();
  for (const auto& e : entries) PutUInt(&b, static_cast<uint64_t>(e.second), width);
  for (size_t i = 0; i < entries.size(); ++i) b.push_back(static_cast<uint8_t>(1 << 2 | log2w));
  const size_t root = b.size();
  PutUInt(&b, root - values, width);
  b.push_back(static_cast<uint8_t>(9 << 2 | log2w));  // FBT_MAP
  b.push_back(static_cast<uint8_t>(width));
  return b;
}

}  // namespace bitlite

#endif  // BITLITE_CHECK_FLEXBUFFER_BUILDER_H_
