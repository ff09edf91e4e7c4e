// PackedMatrix: quantized weights W[N, K] repacked for the matmul kernels.
//
// Rows are taken 16 at a time ("row groups"; the last one zero-padded). Within a
// group, K is walked in scale groups (32 weights for the GGUF formats, 32/64/128
// for grouped int4); each scale group stores
//   [16 scales][16 mins, affine formats only]   (fp16, or bf16 for *_bf16 formats)
//   then, for each 32-weight sub-block of the scale group:
//     4-bit: 4 chunks j = 0..3, each 16 rows x 4 bytes; byte i of row r holds
//            weight k = 4j + i in its low nibble and k = 16 + 4j + i in its high
//            nibble (unsigned codes 0..15, as in the file)            256 bytes
//     q8_0:  8 chunks c = 0..7, each 16 rows x 4 int8 (k = 4c .. 4c + 3)  512 bytes
// So one 64-byte load is "16 rows x 4 consecutive k": the operand order of
// vpdpbusd lanes, of NEON sdot (a quarter at a time) and of an AMX B tile row.
// A group's bytes are contiguous and groups follow each other, so a thread that
// owns a range of rows reads one linear stream. The size equals the file layout's
// (plus padding of the last group). pack() / unpack() convert exactly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "halfbyte/core/tensor.hpp"
#include "halfbyte/quant/format.hpp"
#include "halfbyte/quant/qmatrix.hpp"

namespace halfbyte::ops {

inline constexpr int kRowGroup = 16;  // rows interleaved per group
inline constexpr int kSubBlock = 32;  // weights per integer sub-block (one activation block)

class PackedMatrix {
 public:
  PackedMatrix() = default;

  // Repacks a quantized matrix (any supported format). Throws for formats the
  // kernels do not take.
  static PackedMatrix pack(const quant::QMatrix& q);

  // Repacks rows given as file-layout bytes (rows back to back within a part),
  // stacking the parts in order: e.g. the Q, K and V projections of a layer fused
  // into one matrix, read straight from a memory-mapped file.
  struct RowSource {
    const void* data;
    int64_t rows;
  };
  // consumed, if given, is called once for each chunk of rows [begin, end) (in the
  // stacked order) after it has been read, possibly from several threads at once
  // and in any order: a caller packing from a mapped file releases those pages as
  // it goes, so peak memory stays near the packed size.
  static PackedMatrix pack_rows(const quant::Format& f, int64_t cols, const std::vector<RowSource>& parts,
                                const std::function<void(int64_t begin, int64_t end)>& consumed = {});
  // The exact inverse of pack().
  quant::QMatrix unpack() const;

  const quant::Format& format() const noexcept { return format_; }
  int64_t rows() const noexcept { return rows_; }  // N
  int64_t cols() const noexcept { return cols_; }  // K
  int64_t row_groups() const noexcept { return (rows_ + kRowGroup - 1) / kRowGroup; }
  int64_t scale_groups() const noexcept { return cols_ / format_.block_size(); }
  int sub_blocks_per_scale() const noexcept { return format_.block_size() / kSubBlock; }
  size_t header_bytes() const noexcept { return size_t(format_.has_min() ? 64 : 32); }
  size_t sub_block_bytes() const noexcept { return format_.is_4bit() ? 256 : 512; }
  size_t scale_group_bytes() const noexcept {
    return header_bytes() + size_t(sub_blocks_per_scale()) * sub_block_bytes();
  }
  size_t row_group_bytes() const noexcept { return size_t(scale_groups()) * scale_group_bytes(); }
  size_t nbytes() const noexcept { return data_.size(); }
  const uint8_t* data() const noexcept { return data_.data(); }
  const uint8_t* row_group(int64_t g) const noexcept { return data_.data() + size_t(g) * row_group_bytes(); }

 private:
  quant::Format format_{};
  int64_t rows_ = 0, cols_ = 0;
  Buffer<uint8_t> data_;
};

}  // namespace halfbyte::ops
