// PackedMatrix::pack / unpack: file layout <-> the kernels' interleaved layout.
#include "halfbyte/ops/packed.hpp"

#include <algorithm>
#include <cstring>

#include "core/thread_pool.hpp"
#include "halfbyte/core/error.hpp"
#include "halfbyte/threads.hpp"
#include "kernel_table.hpp"
#include "packed_io.hpp"

namespace halfbyte {
namespace kernels {

Family family_of(const quant::Format& f) {
  if (f.kind == quant::Kind::Q8_0) return kQ8;
  return f.has_min() ? kAffine4 : kSym4;
}

Packed Packed::of(const ops::PackedMatrix& p) {
  Packed w;
  w.data = p.data();
  w.rows = p.rows();
  w.cols = p.cols();
  w.scale_groups = p.scale_groups();
  w.bps = p.sub_blocks_per_scale();
  w.header_bytes = p.header_bytes();
  w.sub_block_bytes = p.sub_block_bytes();
  w.scale_group_bytes = p.scale_group_bytes();
  w.row_group_bytes = p.row_group_bytes();
  w.family = family_of(p.format());
  w.bf16 = p.format().kind == quant::Kind::Int4 && p.format().scale == quant::ScaleType::BF16;
  return w;
}

}  // namespace kernels

namespace ops {
namespace {

using quant::Kind;

// Offset of the nibbles / int8 codes inside a file block.
size_t codes_offset(const quant::Format& f) { return f.has_min() ? 4 : 2; }

// File block -> codes in element order (0..15 for 4-bit, int8 bits for q8).
void decode_codes(const quant::Format& f, const uint8_t* blk, uint8_t* codes) {
  const uint8_t* qs = blk + codes_offset(f);
  const int n = f.block_size();
  if (f.kind == Kind::Q8_0) {
    std::memcpy(codes, qs, size_t(n));
  } else if (f.kind == Kind::Int4) {  // pairs order
    for (int e = 0; e < n; ++e) codes[e] = uint8_t((qs[e / 2] >> (4 * (e & 1))) & 15);
  } else {  // GGUF order: byte j = element j | element j + 16
    for (int j = 0; j < 16; ++j) {
      codes[j] = qs[j] & 15;
      codes[j + 16] = qs[j] >> 4;
    }
  }
}

void encode_codes(const quant::Format& f, const uint8_t* codes, uint8_t* blk) {
  uint8_t* qs = blk + codes_offset(f);
  const int n = f.block_size();
  if (f.kind == Kind::Q8_0) {
    std::memcpy(qs, codes, size_t(n));
  } else if (f.kind == Kind::Int4) {
    for (int j = 0; j < n / 2; ++j) qs[j] = uint8_t(codes[2 * j] | (codes[2 * j + 1] << 4));
  } else {
    for (int j = 0; j < 16; ++j) qs[j] = uint8_t(codes[j] | (codes[j + 16] << 4));
  }
}

}  // namespace

PackedMatrix PackedMatrix::pack(const quant::QMatrix& q) {
  return pack_rows(q.format(), q.cols(), {RowSource{q.data(), q.rows()}});
}

PackedMatrix PackedMatrix::pack_rows(const quant::Format& f, int64_t cols, const std::vector<RowSource>& parts,
                                     const std::function<void(int64_t begin, int64_t end)>& consumed) {
  PackedMatrix p;
  p.format_ = f;
  p.cols_ = cols;
  const size_t row_bytes = quant::row_bytes(f, cols);
  std::vector<const uint8_t*> row_ptr;
  for (const RowSource& part : parts) {
    if (part.rows < 0) throw_invalid("pack: a part has ", part.rows, " rows");
    for (int64_t i = 0; i < part.rows; ++i) row_ptr.push_back(static_cast<const uint8_t*>(part.data) + size_t(i) * row_bytes);
  }
  p.rows_ = int64_t(row_ptr.size());
  if (f.block_size() % kSubBlock != 0)
    throw_invalid("pack: format ", f.name(), " is not supported by the matmul kernels");
  const int64_t groups = p.row_groups();
  const size_t rgb = p.row_group_bytes(), sgb = p.scale_group_bytes(), hb = p.header_bytes();
  const size_t sbb = p.sub_block_bytes();
  const int bps = p.sub_blocks_per_scale();
  const bool is4 = f.is_4bit();
  if (groups > 0 && rgb > SIZE_MAX / size_t(groups)) throw_invalid("pack: matrix too large");
  p.data_ = Buffer<uint8_t>(size_t(groups) * rgb);
  std::memset(p.data_.data(), 0, p.data_.size());
  uint8_t* base = p.data_.data();
  const auto pack_group = [&](int64_t g) {
    uint8_t codes[quant::kMaxBlock];
    for (int64_t s = 0; s < p.scale_groups(); ++s) {
      uint8_t* sg = base + size_t(g) * rgb + size_t(s) * sgb;
      for (int r = 0; r < kRowGroup; ++r) {
        const int64_t n = g * kRowGroup + r;
        if (n >= p.rows_) break;
        const uint8_t* blk = row_ptr[size_t(n)] + size_t(s) * f.block_bytes();
        std::memcpy(sg + 2 * r, blk, 2);
        if (f.has_min()) std::memcpy(sg + 32 + 2 * r, blk + 2, 2);
        decode_codes(f, blk, codes);
        for (int b = 0; b < bps; ++b) {
          uint8_t* sub = sg + hb + size_t(b) * sbb;
          const uint8_t* c = codes + 32 * b;
          if (is4) {
            for (int k = 0; k < 16; ++k)
              sub[kernels::nib_offset(r, k)] = uint8_t(c[k] | (c[k + 16] << 4));
          } else {
            for (int k = 0; k < 32; ++k) sub[size_t(k >> 2) * 64 + size_t(r) * 4 + size_t(k & 3)] = c[k];
          }
        }
      }
    }
  };
  // Row groups in chunks of about 1 MiB of source, taken in order by the threads
  // (core/thread_pool.hpp); each finished chunk is reported to `consumed` at once so
  // that the caller can release what has been read.
  const int64_t chunk = std::max<int64_t>(1, int64_t((size_t(1) << 20) / (size_t(kRowGroup) * row_bytes + 1)));
  const int64_t n_chunks = (groups + chunk - 1) / chunk;
  detail::parallel_tasks(n_chunks, num_threads(), [&](int64_t ci, int) {
    const int64_t g0 = ci * chunk, g1 = std::min(groups, g0 + chunk);
    for (int64_t g = g0; g < g1; ++g) pack_group(g);
    if (consumed) consumed(g0 * kRowGroup, std::min(p.rows_, g1 * kRowGroup));
  });
  return p;
}

quant::QMatrix PackedMatrix::unpack() const {
  quant::QMatrix q(format_, rows_, cols_);
  const quant::Format& f = format_;
  const int bps = sub_blocks_per_scale();
  const bool is4 = f.is_4bit();
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (int64_t n = 0; n < rows_; ++n) {
    const int64_t g = n / kRowGroup;
    const int r = int(n % kRowGroup);
    uint8_t codes[quant::kMaxBlock];
    for (int64_t s = 0; s < scale_groups(); ++s) {
      const uint8_t* sg = row_group(g) + size_t(s) * scale_group_bytes();
      uint8_t* blk = q.row(n) + size_t(s) * f.block_bytes();
      std::memcpy(blk, sg + 2 * r, 2);
      if (f.has_min()) std::memcpy(blk + 2, sg + 32 + 2 * r, 2);
      for (int b = 0; b < bps; ++b) {
        const uint8_t* sub = sg + header_bytes() + size_t(b) * sub_block_bytes();
        for (int k = 0; k < 32; ++k) codes[32 * b + k] = uint8_t(kernels::code_at(sub, is4, r, k));
      }
      encode_codes(f, codes, blk);
    }
  }
  return q;
}

}  // namespace ops
}  // namespace halfbyte
