// Umbrella header: everything public in halfbyte.
#pragma once

#include "halfbyte/version.hpp"
#include "halfbyte/core/error.hpp"
#include "halfbyte/core/half.hpp"
#include "halfbyte/core/dtype.hpp"
#include "halfbyte/core/tensor.hpp"
#include "halfbyte/quant/format.hpp"
#include "halfbyte/quant/blocks.hpp"
#include "halfbyte/quant/quantize.hpp"
#include "halfbyte/quant/qmatrix.hpp"
#include "halfbyte/runtime.hpp"
#include "halfbyte/threads.hpp"
#include "halfbyte/ops/packed.hpp"
#include "halfbyte/ops/matmul.hpp"
