// The Hugging Face seeds of make_fuzz_seeds: safetensors files, tokenizer.json
// (byte-level BPE, SentencePiece-style BPE, WordPiece) and encoder config.json,
// written here as text and bytes from the formats' definitions (not by halfbyte).
#include <algorithm>
#include <string>
#include <vector>

#include "safetensors_write.hpp"
#include "seeds_common.hpp"

namespace halfbyte::fuzz::seeds {
namespace {

// --- safetensors seeds ----------------------------------------------------------
namespace st = halfbyte::fuzz::st;

std::vector<uint8_t> st_f32_f16() {
  return st::file({{"weight", "F32", {2, 3}, st::f32(st::pattern(6, 1))},
                   {"bias", "F16", {4}, st::f16(st::pattern(4, 2))}});
}

std::vector<uint8_t> st_bf16() {
  return st::file({{"model.embed_tokens.weight", "BF16", {3, 2}, st::bf16(st::pattern(6, 3))}},
                  R"({"format":"pt","note":"caf\u00e9"})");
}

// A dtype halfbyte does not read (I64: skipped) beside a 3-D F32 tensor.
std::vector<uint8_t> st_i64_f32() {
  std::vector<uint8_t> ids;
  for (uint64_t v : {uint64_t(7), ~uint64_t(0)})
    for (int b = 0; b < 8; ++b) ids.push_back(uint8_t(v >> (8 * b)));
  return st::file({{"position_ids", "I64", {1, 2}, ids}, {"cube", "F32", {2, 2, 2}, st::f32(st::pattern(8, 4))}});
}

// Shapes GGUF has no word for, all valid safetensors: a scalar (GGUF's [1]), no
// elements (a 0 beside sizes whose product would overflow), five dimensions.
std::vector<uint8_t> st_odd_shapes() {
  const uint64_t big = uint64_t(1) << 53;  // the reader's largest size
  return st::file({{"logit_scale", "F32", {}, st::f32({2.5f})},
                   {"empty", "F16", {0, 3}, {}},
                   {"empty_big", "F32", {0, big, big}, {}},
                   {"five_dims", "BF16", {1, 2, 1, 1, 2}, st::bf16(st::pattern(4, 5))},
                   {"weight", "F32", {2, 2}, st::f32(st::pattern(4, 6))}});
}

// --- tokenizer.json seeds --------------------------------------------------------
using st::json_string;

// {"a":0,"b":1,...} of tokens by id.
std::string vocab_object(const std::vector<std::string>& tokens) {
  std::string s = "{";
  for (size_t i = 0; i < tokens.size(); ++i) s += (i ? "," : "") + json_string(tokens[i]) + ":" + std::to_string(i);
  return s + "}";
}

std::string added_token(size_t id, const std::string& content, bool special) {
  return "{\"id\":" + std::to_string(id) + ",\"content\":" + json_string(content) +
         ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":" + (special ? "false" : "true") +
         ",\"special\":" + (special ? "true" : "false") + "}";
}

// TemplateProcessing: `before` (one special token, or none) then $A.
std::string template_processing(const std::string& before, size_t id) {
  return R"({"type":"TemplateProcessing","single":[{"SpecialToken":{"id":)" + json_string(before) +
         R"(,"type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[{"SpecialToken":{"id":)" +
         json_string(before) + R"(,"type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"Sequence":{"id":"B","type_id":1}}],"special_tokens":{)" +
         json_string(before) + ":{\"id\":" + json_string(before) + ",\"ids\":[" + std::to_string(id) +
         "],\"tokens\":[" + json_string(before) + "]}}}";
}

std::string tokenizer_json(const std::string& added, const std::string& normalizer, const std::string& pre,
                           const std::string& post, const std::string& decoder, const std::string& model) {
  return R"({"version":"1.0","truncation":null,"padding":null,"added_tokens":[)" + added + R"(],"normalizer":)" +
         normalizer + R"(,"pre_tokenizer":)" + pre + R"(,"post_processor":)" + post + R"(,"decoder":)" + decoder +
         R"(,"model":)" + model + "}";
}

// Byte-level BPE (GPT-2 / SmolLM2 style; llama3: Split regex + ByteLevel without
// its own regex, merges as pairs, ignore_merges), the vocabulary of the GGUF seeds.
std::string tok_bpe(bool llama3) {
  const BpeVocab v = bpe_vocab();
  std::vector<std::string> vocab;
  std::string added;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.types[i] == 1) {
      vocab.push_back(v.tokens[i]);
    } else {
      if (!added.empty()) added += ",";
      added += added_token(i, v.tokens[i], v.types[i] == 3);
    }
  }
  std::string merges = "[";
  for (size_t i = 0; i < v.merges.size(); ++i) {
    const std::string& m = v.merges[i];
    const size_t sp = m.find(' ');
    merges += (i ? "," : "") +
              (llama3 ? "[" + json_string(m.substr(0, sp)) + "," + json_string(m.substr(sp + 1)) + "]" : json_string(m));
  }
  merges += "]";
  const std::string model = R"({"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,)"
                            R"("end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":)" +
                            std::string(llama3 ? "true" : "false") + R"(,"vocab":)" + vocab_object(vocab) +
                            R"(,"merges":)" + merges + "}";
  const size_t eot = v.tokens.size() - 4;  // <|endoftext|>
  std::string pre, post;
  if (llama3) {
    const std::string regex =
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    pre = R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":)" + json_string(regex) +
          R"(},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]})";
    post = R"({"type":"Sequence","processors":[{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true},)" +
           template_processing("<|endoftext|>", eot) + "]}";
  } else {
    pre = R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true})";
    post = template_processing("<|endoftext|>", eot);
  }
  return tokenizer_json(added, "null", pre, post,
                        R"({"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true})", model);
}

// SentencePiece-style BPE with byte fallback: <unk> <s> </s>, <0xNN>, characters,
// then the tokens the merges make. Metaspace pre-tokenizer (TinyLlama / Mistral
// converted by recent tokenizers) or Prepend + Replace normalizers (Llama 2).
std::string tok_spm(bool metaspace) {
  std::vector<std::string> vocab = {"<unk>", "<s>", "</s>"};
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) vocab.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
  for (const char* c : {"_", "e", "l", "o", "h", "t", "w", "r", "d", "H", "a", "c", "f", "n", "s", "i", "1", "2",
                        "!", ",", ".", "'", "\xC3\xA9", "\xE4\xBD\xA0", "\xE5\xA5\xBD"}) {
    std::string s = c;
    vocab.push_back(s == "_" ? kSpace : s);
  }
  const std::vector<std::pair<std::string, std::string>> merges = {
      {kSpace, "t"}, {"h", "e"}, {kSpace + "t", "he"}, {kSpace, "H"}, {"e", "l"}, {"l", "o"}, {kSpace + "H", "el"},
      {kSpace + "Hel", "lo"}, {kSpace, "w"}, {"o", "r"}, {kSpace + "w", "or"}, {"l", "d"}, {kSpace + "wor", "ld"},
      {"1", "2"}, {kSpace, "a"}, {"i", "n"}, {kSpace, "in"}, {"c", "a"}, {"f", "\xC3\xA9"}, {"ca", "f\xC3\xA9"}};
  std::string m = "[";
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& [a, b] = merges[i];
    if (std::find(vocab.begin(), vocab.end(), a + b) == vocab.end()) vocab.push_back(a + b);
    m += (i ? "," : "") + (metaspace ? "[" + json_string(a) + "," + json_string(b) + "]" : json_string(a + " " + b));
  }
  m += "]";
  const std::string model = R"({"type":"BPE","dropout":null,"unk_token":"<unk>","continuing_subword_prefix":null,)"
                            R"("end_of_word_suffix":null,"fuse_unk":true,"byte_fallback":true,"ignore_merges":false,"vocab":)" +
                            vocab_object(vocab) + R"(,"merges":)" + m + "}";
  const std::string added = added_token(0, "<unk>", true) + "," + added_token(1, "<s>", true) + "," +
                            added_token(2, "</s>", true);
  const std::string sp = json_string(kSpace);
  if (metaspace)
    return tokenizer_json(added, "null",
                          R"({"type":"Metaspace","replacement":)" + sp + R"(,"prepend_scheme":"first","split":false})",
                          template_processing("<s>", 1),
                          R"({"type":"Metaspace","replacement":)" + sp + R"(,"prepend_scheme":"first","split":false})",
                          model);
  return tokenizer_json(added,
                        R"({"type":"Sequence","normalizers":[{"type":"Prepend","prepend":)" + sp +
                            R"(},{"type":"Replace","pattern":{"String":" "},"content":)" + sp + "}]}",
                        "null", template_processing("<s>", 1),
                        R"({"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":)" + sp +
                            R"(},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]})",
                        model);
}

// WordPiece (BERT): BertNormalizer, BertPreTokenizer, [CLS] $A [SEP] (or
// BertProcessing, and a cased normalizer).
const std::vector<std::string> kWordPieceVocab = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "sat", "on", "a", "mat", "hello", "world",
    "##s", "##ing", ".", ",", "!", "'", "caf", "##e", "na", "##ive", "\xE4\xBD\xA0", "\xE5\xA5\xBD", "1", "##2",
    "##3", "Hello", "The", "\xC3\xA9"};

std::string tok_wordpiece(bool bert_processing) {
  std::string added;
  for (size_t i = 0; i < 5; ++i) added += (i ? "," : "") + added_token(i, kWordPieceVocab[i], true);
  const std::string model = R"({"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##",)"
                            R"("max_input_chars_per_word":100,"vocab":)" +
                            vocab_object(kWordPieceVocab) + "}";
  const std::string post =
      bert_processing
          ? std::string(R"({"type":"BertProcessing","sep":["[SEP]",3],"cls":["[CLS]",2]})")
          : std::string(
                R"({"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},)"
                R"({"SpecialToken":{"id":"[SEP]","type_id":0}}],"pair":[{"SpecialToken":{"id":"[CLS]","type_id":0}},)"
                R"({"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}},{"Sequence":{"id":"B","type_id":1}},)"
                R"({"SpecialToken":{"id":"[SEP]","type_id":1}}],"special_tokens":{"[CLS]":{"id":"[CLS]","ids":[2],"tokens":["[CLS]"]},)"
                R"("[SEP]":{"id":"[SEP]","ids":[3],"tokens":["[SEP]"]}}})");
  const std::string norm =
      bert_processing
          ? R"({"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":false,"lowercase":false})"
          : R"({"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true})";
  return tokenizer_json(added, norm, R"({"type":"BertPreTokenizer"})", post,
                        R"({"type":"WordPiece","prefix":"##","cleanup":true})", model);
}

// --- encoder config.json seeds ---------------------------------------------------
// They match fuzz_encoder_config's fixture: vocabulary 16, hidden 32, 1 layer, 2
// heads, intermediate 64, 16 positions, 2 token types, a 2-label head.
std::string bert_config(bool head) {
  return std::string(R"({"_name_or_path":"fuzz-bert","architectures":[)") +
         (head ? R"("BertForSequenceClassification"],"id2label":{"0":"NEGATIVE","1":"POSITIVE"},)"
                 R"("label2id":{"NEGATIVE":0,"POSITIVE":1},"problem_type":"single_label_classification",)"
               : R"("BertModel"],)") +
         R"("attention_probs_dropout_prob":0.1,"classifier_dropout":null,"gradient_checkpointing":false,)"
         R"("hidden_act":"gelu","hidden_dropout_prob":0.1,"hidden_size":32,"initializer_range":0.02,)"
         R"("intermediate_size":64,"layer_norm_eps":1e-12,"max_position_embeddings":16,"model_type":"bert",)"
         R"("num_attention_heads":2,"num_hidden_layers":1,"pad_token_id":0,"position_embedding_type":"absolute",)"
         R"("torch_dtype":"float32","transformers_version":"4.44.0","type_vocab_size":2,"use_cache":true,"vocab_size":16})";
}

std::string distilbert_config(bool head) {
  return std::string(R"({"_name_or_path":"fuzz-distilbert","activation":"gelu","architectures":[)") +
         (head ? R"("DistilBertForSequenceClassification"],"num_labels":2,"problem_type":"multi_label_classification",)"
               : R"("DistilBertModel"],)") +
         R"("attention_dropout":0.1,"dim":32,"dropout":0.1,"hidden_dim":64,"initializer_range":0.02,)"
         R"("max_position_embeddings":16,"model_type":"distilbert","n_heads":2,"n_layers":1,"pad_token_id":0,)"
         R"("qa_dropout":0.1,"seq_classif_dropout":0.2,"sinusoidal_pos_embds":false,"tie_weights_":true,)"
         R"("torch_dtype":"float32","transformers_version":"4.44.0","vocab_size":16})";
}

}  // namespace

void write_hf_seeds(const fs::path& root) {
  save(root / "fuzz_safetensors" / "f32_f16.safetensors", st_f32_f16());
  save(root / "fuzz_safetensors" / "bf16.safetensors", st_bf16());
  save(root / "fuzz_safetensors" / "i64_f32_3d.safetensors", st_i64_f32());
  save(root / "fuzz_safetensors" / "odd_shapes.safetensors", st_odd_shapes());
  save(root / "fuzz_safetensors" / "empty.safetensors", st::file({}, ""));

  save(root / "fuzz_hf_tokenizer" / "bpe_gpt2.json", text(tok_bpe(false)));
  save(root / "fuzz_hf_tokenizer" / "bpe_llama3.json", text(tok_bpe(true)));
  save(root / "fuzz_hf_tokenizer" / "spm_metaspace.json", text(tok_spm(true)));
  save(root / "fuzz_hf_tokenizer" / "spm_llama2.json", text(tok_spm(false)));
  save(root / "fuzz_hf_tokenizer" / "wordpiece.json", text(tok_wordpiece(false)));
  save(root / "fuzz_hf_tokenizer" / "wordpiece_bert_processing.json", text(tok_wordpiece(true)));

  save(root / "fuzz_encoder_config" / "bert.json", text(bert_config(false)));
  save(root / "fuzz_encoder_config" / "bert_classifier.json", text(bert_config(true)));
  save(root / "fuzz_encoder_config" / "distilbert.json", text(distilbert_config(false)));
  save(root / "fuzz_encoder_config" / "distilbert_classifier.json", text(distilbert_config(true)));
}

}  // namespace halfbyte::fuzz::seeds
