#include "flexbuffer.h"

#include <cstring>
#include <limits>

namespace bitlite {
namespace {

// FlexBuffer type codes (flexbuffers::Type) that we accept or name.
enum : int {
  kNull = 0,
  kInt = 1,
  kUInt = 2,
  kIndirectInt = 6,
  kIndirectUInt = 7,
  kMap = 9,
  kBool = 26,
};

constexpr size_t kMaxEntries = 4096;  // LCE writes at most 8; guards loops.

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  // True when [pos, pos + width) lies inside the buffer.
  bool InBounds(size_t pos, size_t width) const {
    return pos <= size_ && width <= size_ - pos;
  }

  bool ReadUInt(size_t pos, size_t width, uint64_t* out) const {
    if (!InBounds(pos, width)) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < width; ++i) v |= uint64_t(data_[pos + i]) << (8 * i);
    *out = v;
    return true;
  }

  bool ReadInt(size_t pos, size_t width, int64_t* out) const {
    uint64_t u;
    if (!ReadUInt(pos, width, &u)) return false;
    if (width < 8) {
      const uint64_t sign = uint64_t(1) << (8 * width - 1);
      u = (u ^ sign) - sign;  // sign-extend
    }
    *out = static_cast<int64_t>(u);
    return true;
  }

  // Follows an offset stored at `pos` (width `width`) backwards.
  bool Indirect(size_t pos, size_t width, size_t* target) const {
    uint64_t off;
    if (!ReadUInt(pos, width, &off)) return false;
    if (off > pos) return false;
    *target = pos - static_cast<size_t>(off);
    return true;
  }

  bool CString(size_t pos, std::string* out) const {
    if (pos >= size_) return false;
    const void* end = std::memchr(data_ + pos, 0, size_ - pos);
    if (end == nullptr) return false;
    out->assign(reinterpret_cast<const char*>(data_ + pos),
                static_cast<const uint8_t*>(end) - (data_ + pos));
    return true;
  }

  uint8_t Byte(size_t pos) const { return data_[pos]; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_;
  size_t size_;
};

bool IsValidWidth(uint64_t w) { return w == 1 || w == 2 || w == 4 || w == 8; }

bool Fail(std::string* error, const std::string& msg) {
  *error = "malformed custom options (FlexBuffer): " + msg;
  return false;
}

}  // namespace

bool ParseIntMap(const uint8_t* buffer, size_t length,
                 std::vector<IntOption>* out, std::string* error) {
  out->clear();
  if (buffer == nullptr || length < 3) return Fail(error, "buffer too short");
  Reader r(buffer, length);
  const size_t root_width = r.Byte(length - 1);
  const uint8_t root_packed = r.Byte(length - 2);
  if (!IsValidWidth(root_width)) return Fail(error, "bad root byte width");
  if (length < 2 + root_width) return Fail(error, "buffer too short for root");
  if ((root_packed >> 2) != kMap) return Fail(error, "root is not a map");
  const size_t map_width = size_t(1) << (root_packed & 3);
  const size_t root_pos = length - 2 - root_width;

  size_t values;
  if (!r.Indirect(root_pos, root_width, &values))
    return Fail(error, "root offset out of range");
  if (values < 3 * map_width) return Fail(error, "map header out of range");
  uint64_t count, keys_width;
  size_t keys;
  if (!r.ReadUInt(values - map_width, map_width, &count) ||
      !r.ReadUInt(values - 2 * map_width, map_width, &keys_width) ||
      !r.Indirect(values - 3 * map_width, map_width, &keys))
    return Fail(error, "map header out of range");
  if (count > kMaxEntries) return Fail(error, "map has too many entries");
  if (!IsValidWidth(keys_width)) return Fail(error, "bad key byte width");
  const size_t n = static_cast<size_t>(count);
  // Values, then one type byte per value; keys vector with its size before it.
  if (!r.InBounds(values, n * map_width + n))
    return Fail(error, "map values out of range");
  uint64_t key_count;
  if (keys < keys_width || !r.ReadUInt(keys - keys_width, keys_width, &key_count) ||
      key_count != count || !r.InBounds(keys, n * keys_width))
    return Fail(error, "map keys out of range");

  for (size_t i = 0; i < n; ++i) {
    IntOption opt;
    size_t key_pos;
    if (!r.Indirect(keys + i * keys_width, keys_width, &key_pos) ||
        !r.CString(key_pos, &opt.key))
      return Fail(error, "key string out of range");
    const size_t elem = values + i * map_width;
    const uint8_t packed = r.Byte(values + n * map_width + i);
    const int type = packed >> 2;
    const size_t width = size_t(1) << (packed & 3);
    bool ok = true;
    switch (type) {
      case kInt:
        opt.is_int = true;
        ok = r.ReadInt(elem, map_width, &opt.value);
        break;
      case kUInt:
      case kBool: {
        uint64_t u = 0;
        ok = r.ReadUInt(elem, map_width, &u);
        opt.is_int = u <= uint64_t(std::numeric_limits<int64_t>::max());
        opt.value = static_cast<int64_t>(u);
        break;
      }
      case kIndirectInt:
      case kIndirectUInt: {
        size_t target;
        ok = r.Indirect(elem, map_width, &target);
        if (ok && type == kIndirectInt) {
          ok = r.ReadInt(target, width, &opt.value);
          opt.is_int = ok;
        } else if (ok) {
          uint64_t u = 0;
          ok = r.ReadUInt(target, width, &u);
          opt.is_int = u <= uint64_t(std::numeric_limits<int64_t>::max());
          opt.value = static_cast<int64_t>(u);
        }
        break;
      }
      default:
        opt.is_int = false;  // a float, string, vector...: not an option we take
    }
    if (!ok) return Fail(error, "value of '" + opt.key + "' out of range");
    out->push_back(std::move(opt));
  }
  return true;
}

bool ReadInt32Options(const uint8_t* buffer, size_t length,
                      const std::vector<std::string>& keys,
                      std::vector<int32_t>* values, std::string* error) {
  std::vector<IntOption> entries;
  if (!ParseIntMap(buffer, length, &entries, error)) return false;
  values->assign(keys.size(), 0);
  for (size_t k = 0; k < keys.size(); ++k) {
    const IntOption* found = nullptr;
    for (const auto& e : entries)
      if (e.key == keys[k]) found = &e;
    if (found == nullptr) {
      *error = "custom option '" + keys[k] + "' is missing";
      return false;
    }
    if (!found->is_int || found->value < std::numeric_limits<int32_t>::min() ||
        found->value > std::numeric_limits<int32_t>::max()) {
      *error = "custom option '" + keys[k] + "' is not a 32-bit integer";
      return false;
    }
    (*values)[k] = static_cast<int32_t>(found->value);
  }
  return true;
}

}  // namespace bitlite
