// A bounds-checked reader for the one FlexBuffer shape LCE writes as custom
// options: a root map from string keys to integers. The bytes come from the
// model file, i.e. from whoever wrote it, so every offset is checked before it
// is followed and every failure is reported as a message, never a crash.
//
// Format (google/flatbuffers, docs "FlexBuffers internals"): the last byte is
// the root's byte width, the byte before it the root's packed type
// (type << 2 | log2(width)); a map value is an offset back to its values
// vector, preceded by [keys offset, keys byte width, size], followed by one
// packed type byte per value; keys are offsets back to NUL-terminated strings.
#ifndef BITLITE_FLEXBUFFER_H_
#define BITLITE_FLEXBUFFER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bitlite {

struct IntOption {
  std::string key;
  bool is_int = false;  // false: present but not an integer (e.g. a string)
  int64_t value = 0;
};

// Parses `buffer` as a FlexBuffer map. On success fills `out` (key order as in
// the buffer) and returns true; otherwise sets `error` and returns false.
bool ParseIntMap(const uint8_t* buffer, size_t length,
                 std::vector<IntOption>* out, std::string* error);

// Reads the named keys as int32 into `values` (same order as `keys`).
// Fails with a message naming the first key that is missing, not an integer,
// or outside the int32 range.
bool ReadInt32Options(const uint8_t* buffer, size_t length,
                      const std::vector<std::string>& keys,
                      std::vector<int32_t>* values, std::string* error);

}  // namespace bitlite

#endif  // BITLITE_FLEXBUFFER_H_
