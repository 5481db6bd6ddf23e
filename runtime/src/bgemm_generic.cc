// The portable kernel: 64-bit XOR + popcount, 1 pixel x 4 filters per step.
#include <cstring>
#include <vector>

#include "bgemm.h"

namespace bitlite {

static inline uint64_t Load64(const uint32_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));  // rows are only 16-byte aligned in general
  return v;
}

void BgemmGeneric(const uint32_t* patches, int n_pix, const uint32_t* filters,
                  int n_out, int kwords, int32_t* accum, int ldc) {
  for (int p = 0; p < n_pix; ++p) {
    const uint32_t* a = patches + static_cast<long>(p) * kwords;
    int o = 0;
    for (; o + 4 <= n_out; o += 4) {
      const uint32_t* b = filters + static_cast<long>(o) * kwords;
      int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (int k = 0; k < kwords; k += 2) {
        const uint64_t x = Load64(a + k);
        s0 += __builtin_popcountll(x ^ Load64(b + k));
        s1 += __builtin_popcountll(x ^ Load64(b + kwords + k));
        s2 += __builtin_popcountll(x ^ Load64(b + 2 * kwords + k));
        s3 += __builtin_popcountll(x ^ Load64(b + 3 * kwords + k));
      }
      int32_t* c = accum + static_cast<long>(p) * ldc + o;
      c[0] = static_cast<int32_t>(s0);
      c[1] = static_cast<int32_t>(s1);
      c[2] = static_cast<int32_t>(s2);
      c[3] = static_cast<int32_t>(s3);
    }
    for (; o < n_out; ++o) {
      const uint32_t* b = filters + static_cast<long>(o) * kwords;
      int64_t s = 0;
      for (int k = 0; k < kwords; k += 2) s += __builtin_popcountll(Load64(a + k) ^ Load64(b + k));
      accum[static_cast<long>(p) * ldc + o] = static_cast<int32_t>(s);
    }
  }
}

}  // namespace bitlite

namespace bitlite {

size_t BlockedFilterWords(int n_out, int kwords) {
  const size_t blocks = (static_cast<size_t>(n_out) + kBlockFilters - 1) / kBlockFilters;
  return blocks * kBlockFilters * static_cast<size_t>(kwords);
}

void InterleavePatches4(const uint32_t* rows, int n_pix, int kwords, uint32_t* out) {
  const int groups = (n_pix + 3) / 4, chunks = kwords / kKWordAlign;
  for (int q = 0; q < groups; ++q)
    for (int k = 0; k < chunks; ++k)
      for (int i = 0; i < 4; ++i) {
        uint32_t* dst = out + ((static_cast<size_t>(q) * chunks + k) * 4 + i) * kKWordAlign;
        const int p = 4 * q + i;
        for (int w = 0; w < kKWordAlign; ++w)
          dst[w] = p < n_pix ? rows[static_cast<size_t>(p) * kwords + kKWordAlign * k + w] : 0;
      }
}

void PackFiltersBlocked16(const uint32_t* rows, int n_out, int kwords, uint32_t* out) {
  const int blocks = (n_out + kBlockFilters - 1) / kBlockFilters;
  const int chunks = kwords / kKWordAlign;
  for (int b = 0; b < blocks; ++b)
    for (int k = 0; k < chunks; ++k) {
      uint32_t* dst = out + (static_cast<size_t>(b) * chunks + k) * kBlockChunkWords;
      for (int i = 0; i < 4; ++i)      // vector
        for (int l = 0; l < 4; ++l) {  // 128-bit lane
          const int f = b * kBlockFilters + 4 * l + i;
          for (int w = 0; w < kKWordAlign; ++w)
            dst[16 * i + 4 * l + w] =
                f < n_out ? rows[static_cast<size_t>(f) * kwords + kKWordAlign * k + w] : 0;
        }
    }
}

size_t NibbleFilterWords(int n_out, int kwords) { return 2 * BlockedFilterWords(n_out, kwords); }

void PackFiltersNibbles16(const uint32_t* rows, int n_out, int kwords, uint32_t* out) {
  std::vector<uint32_t> blocked(BlockedFilterWords(n_out, kwords));
  PackFiltersBlocked16(rows, n_out, kwords, blocked.data());
  for (size_t c = 0; c < blocked.size() / kBlockChunkWords; ++c)
    for (int i = 0; i < kBlockChunkWords; ++i) {
      const uint32_t w = blocked[c * kBlockChunkWords + i];
      out[2 * c * kBlockChunkWords + i] = w & 0x0f0f0f0fu;
      out[(2 * c + 1) * kBlockChunkWords + i] = (w >> 4) & 0x0f0f0f0fu;
    }
}

}  // namespace bitlite
