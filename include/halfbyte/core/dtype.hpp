// Element types of plain (unquantized) tensors. Quantized block formats are
// described separately by halfbyte::quant::Format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "halfbyte/core/error.hpp"
#include "halfbyte/core/half.hpp"

namespace halfbyte {

enum class DType : uint8_t { F32, F16, BF16, I8, U8, I32 };

constexpr size_t dtype_size(DType t) noexcept {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I8: return 1;
    case DType::U8: return 1;
    case DType::I32: return 4;
  }
  return 0;
}

constexpr std::string_view dtype_name(DType t) noexcept {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::I8: return "i8";
    case DType::U8: return "u8";
    case DType::I32: return "i32";
  }
  return "?";
}

inline DType parse_dtype(std::string_view name) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::I8, DType::U8, DType::I32})
    if (dtype_name(t) == name) return t;
  throw_invalid("unknown dtype '", name, "' (expected f32, f16, bf16, i8, u8 or i32)");
}

// C++ type -> DType.
template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<f16> { static constexpr DType value = DType::F16; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::BF16; };
template <> struct dtype_of<int8_t> { static constexpr DType value = DType::I8; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::U8; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::I32; };
template <class T> inline constexpr DType dtype_of_v = dtype_of<std::remove_const_t<T>>::value;

}  // namespace halfbyte
