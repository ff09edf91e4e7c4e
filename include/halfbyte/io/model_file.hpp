// One entry point for every model format halfbyte reads. Each is presented as a
// GgufFile: GGUF's metadata keys and tensor names, with tensors pointing into the
// memory-mapped source files, so the model code sees one format.
//
//   GGUF (v2, v3)           any *.gguf file (recognised by its magic)
//   llama2.c checkpoints    Karpathy's stories*.bin: the legacy headerless layout
//                           (v0) and the "ak42" v1 layout, fp32, shared or separate
//                           classifier; tokenizer.bin beside it or given
//   HF safetensors          a folder with config.json, *.safetensors and
//                           tokenizer.json, or one .safetensors file in such a folder
//
// Every byte is treated as hostile: errors are halfbyte::Error (Io for a missing
// file, Format for malformed content, Unsupported for a valid file this version
// does not handle) naming the file and the field.
#pragma once

#include <string>

#include "halfbyte/io/gguf.hpp"

namespace halfbyte::io {

// Opens `path` in whichever format it is. `tokenizer`, if not empty, is a
// llama2.c tokenizer.bin or an HF tokenizer.json whose vocabulary replaces or
// supplies the model's own (tokenizer.ggml.* metadata).
GgufFile open_model_file(const std::string& path, const std::string& tokenizer = "");

// The parts, for tools and tests.
GgufFile open_llama2c(const std::string& path);
GgufFile open_safetensors(const std::string& path);
// The tensors of a safetensors model (folder or file, sharded or not) under their
// HF names, shapes reversed into GGUF's ne order; only those of dtype F32, F16 or
// BF16. No config.json is read and no metadata set but general.name: for
// architectures whose loader reads the config itself (BERT encoders).
GgufFile open_safetensors_tensors(const std::string& path);
void add_llama2c_tokenizer(GgufFile& f, const std::string& tokenizer_bin);
void add_hf_tokenizer(GgufFile& f, const std::string& tokenizer_json);

}  // namespace halfbyte::io
