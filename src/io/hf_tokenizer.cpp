// Hugging Face tokenizer.json (with tokenizer_config.json and chat_template.jinja
// beside it, if present) as GGUF tokenizer.ggml.* metadata, the way llama.cpp's
// converter describes the two BPE families halfbyte tokenizes:
//
//   byte-level BPE (GPT-2, SmolLM2, Qwen2, Llama 3): a ByteLevel pre-tokenizer,
//     optionally after a Split regex or individual Digits. -> model "gpt2", merges
//     "a b", and tokenizer.ggml.pre named by the regex (gpt-2, llama3/dbrx, qwen2,
//     smollm); an unknown regex is refused. A normalizer other than NFC is refused
//     (NFC itself is not applied, as in llama.cpp).
//   SentencePiece-style BPE (Llama 2, TinyLlama, Mistral): byte_fallback with a
//     Metaspace pre-tokenizer or a Prepend/Replace "▁" normalizer. -> model "llama"
//     with scores from merge ranks (the token the rank-r merge makes scores -r,
//     tokens no merge makes score below all), <0xNN> tokens typed byte, the unknown
//     token typed unknown, and add_space_prefix from Prepend / prepend_scheme.
//     halfbyte (like llama.cpp and SentencePiece) always prefixes the space; HF's
//     Metaspace "first" scheme skips it when the text already starts with one.
//
// Token types: added special tokens (and added "<|...|>" ones) are control tokens,
// other added tokens user-defined; ids missing from the files up to the model's
// vocabulary size become "[PAD<id>]" user-defined tokens, as llama.cpp's converter
// writes them. BOS/EOS and add_bos/add_eos come from tokenizer_config.json, else
// from the post-processor's template; a chat_template becomes
// tokenizer.chat_template. Other tokenizer models (WordPiece, Unigram, WordLevel)
// are refused (Unsupported).
#include <filesystem>
#include <unordered_map>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/model_file.hpp"
#include "io/hf_json.hpp"
#include "io/metadata_build.hpp"

namespace halfbyte::io {
namespace {

namespace fs = std::filesystem;
using hfjson::json;

constexpr uint64_t kMaxTokenizer = uint64_t(512) << 20;
constexpr uint64_t kMaxConfig = uint64_t(16) << 20;
constexpr const char* kSpace = "\xE2\x96\x81";  // U+2581

enum : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kByte = 6 };

// Regexes of the Split pre-tokenizer that halfbyte's pre-tokenizers implement
// (tokenizer_impl.hpp's PreType), as tokenizer.json files write them.
struct KnownRegex {
  const char* pre;  // tokenizer.ggml.pre ("llama3" becomes "dbrx" without ignore_merges)
  const char* regex;
};
constexpr KnownRegex kRegexes[] = {
    {"gpt-2", R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"},
    {"gpt-2", R"('(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"},
    {"llama3",
     R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
    {"qwen2",
     R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
};

struct Ctx {
  std::string file;
  template <class... Args>
  [[noreturn]] void fail(Args&&... args) const {
    throw_error(ErrorKind::Format, file, ": ", std::forward<Args>(args)...);
  }
  template <class... Args>
  [[noreturn]] void unsupported(Args&&... args) const {
    throw_error(ErrorKind::Unsupported, file, ": ", std::forward<Args>(args)...);
  }
};

std::string type_of(const json& j) {
  const json* t = hfjson::find(j, "type");
  return t && t->is_string() ? t->get<std::string>() : std::string();
}

// The components of a pre-tokenizer or normalizer (a Sequence is flattened one level).
std::vector<const json*> components(const Ctx& c, const json* j, const char* field, const char* list) {
  std::vector<const json*> out;
  if (!j) return out;
  if (!j->is_object()) c.fail(field, " should be an object");
  if (type_of(*j) != "Sequence") return {j};
  const json* items = hfjson::find(*j, list);
  if (!items || !items->is_array()) c.fail(field, ".", list, " should be a list");
  for (const json& x : *items) {
    if (!x.is_object()) c.fail(field, ".", list, " should be a list of objects");
    out.push_back(&x);
  }
  return out;
}

// Table of tokens by id, with the reverse map.
struct Table {
  std::vector<std::string> text;
  std::vector<int32_t> type;
  std::vector<uint8_t> set;
  std::unordered_map<std::string, int32_t> id_of;

  void add(const Ctx& c, int64_t id, const std::string& s, int32_t t, const char* where) {
    if (id < 0 || id >= int64_t(text.size()))
      c.fail(where, ": token '", s, "' has id ", id, ", out of range [0, ", text.size(), ")");
    const size_t i = size_t(id);
    if (set[i] && text[i] != s) c.fail(where, ": id ", id, " is both '", text[i], "' and '", s, "'");
    const auto [it, fresh] = id_of.emplace(s, int32_t(id));
    if (!fresh && it->second != id) c.fail(where, ": token '", s, "' has ids ", it->second, " and ", id);
    text[i] = s;
    type[i] = t;
    set[i] = 1;
  }
  int32_t find(const std::string& s) const {
    const auto it = id_of.find(s);
    return it == id_of.end() ? -1 : it->second;
  }
};

bool is_byte_token(const std::string& s) {
  auto hex = [](char x) { return (x >= '0' && x <= '9') || (x >= 'A' && x <= 'F') || (x >= 'a' && x <= 'f'); };
  return s.size() == 6 && s.compare(0, 3, "<0x") == 0 && hex(s[3]) && hex(s[4]) && s[5] == '>';
}

// The content of a special-token entry of tokenizer_config.json: a string or
// {"content": ...}; empty if absent or null.
std::string token_content(const Ctx& c, const json& cfg, const char* key) {
  const json* v = hfjson::find(cfg, key);
  if (!v) return "";
  if (v->is_string()) return v->get<std::string>();
  if (const json* content = hfjson::find(*v, "content"); content && content->is_string())
    return content->get<std::string>();
  c.fail(key, " should be a string or an object with a content string");
}

// The special tokens the post-processor puts before and after a single sequence.
struct Template {
  std::vector<int64_t> before, after;
};

void read_post_processor(const Ctx& c, const json& pp, const Table& t, Template& out, int depth = 0) {
  if (!pp.is_object()) c.fail("post_processor should be an object");
  const std::string type = type_of(pp);
  auto id_of = [&](const std::string& s) -> int64_t {
    const int32_t id = t.find(s);
    if (id < 0) c.fail("post_processor: special token '", s, "' is not in the vocabulary");
    return id;
  };
  if (type == "Sequence" && depth == 0) {
    const json* ps = hfjson::find(pp, "processors");
    if (!ps || !ps->is_array()) c.fail("post_processor.processors should be a list");
    for (const json& p : *ps) read_post_processor(c, p, t, out, depth + 1);
  } else if (type == "TemplateProcessing") {
    const json* single = hfjson::find(pp, "single");
    if (!single || !single->is_array()) c.fail("post_processor.single should be a list");
    const json* specials = hfjson::find(pp, "special_tokens");
    bool seen_a = false;
    for (const json& piece : *single) {
      if (hfjson::find(piece, "Sequence")) {
        seen_a = true;
        continue;
      }
      const json* st = hfjson::find(piece, "SpecialToken");
      const json* name = st ? hfjson::find(*st, "id") : nullptr;
      if (!name || !name->is_string()) c.fail("post_processor.single: ", hfjson::brief(piece), " is not a piece");
      std::vector<int64_t> ids;
      const json* entry = specials ? hfjson::find(*specials, name->get<std::string>().c_str()) : nullptr;
      const json* list = entry ? hfjson::find(*entry, "ids") : nullptr;
      if (list && list->is_array()) {
        for (const json& x : *list) {
          if (!x.is_number_unsigned() || x.get<uint64_t>() >= t.text.size())
            c.fail("post_processor.special_tokens['", name->get<std::string>(), "'].ids: ", hfjson::brief(x),
                   " is not a token id");
          ids.push_back(int64_t(x.get<uint64_t>()));
        }
      } else {
        ids.push_back(id_of(name->get<std::string>()));
      }
      auto& dst = seen_a ? out.after : out.before;
      dst.insert(dst.end(), ids.begin(), ids.end());
    }
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    for (const auto& [key, dst] : {std::pair{"cls", &out.before}, std::pair{"sep", &out.after}}) {
      const json* v = hfjson::find(pp, key);
      if (!v || !v->is_array() || v->size() != 2 || !(*v)[0].is_string())
        c.fail("post_processor.", key, " should be [token, id]");
      dst->push_back(id_of((*v)[0].get<std::string>()));
    }
  } else if (type != "ByteLevel") {
    c.unsupported("post_processor of type '", type, "' is not supported");
  }
}

// tokenizer.ggml.pre for a byte-level BPE pre-tokenizer; throws for others.
std::string byte_level_pre(const Ctx& c, const std::vector<const json*>& pre, bool ignore_merges) {
  std::string regex, shape;
  bool digits = false, byte_level = false, byte_level_regex = true;
  for (const json* p : pre) {
    const std::string type = type_of(*p);
    shape += (shape.empty() ? "" : ", ") + type;
    if (type == "ByteLevel") {
      if (hfjson::opt_bool(*p, c.file + ": pre_tokenizer ByteLevel", "add_prefix_space").value_or(false))
        c.unsupported("pre_tokenizer ByteLevel with add_prefix_space is not supported");
      byte_level_regex = hfjson::opt_bool(*p, c.file + ": pre_tokenizer ByteLevel", "use_regex").value_or(true);
      byte_level = true;
    } else if (type == "Split" && regex.empty() && !byte_level) {
      const json* pat = hfjson::find(*p, "pattern");
      const json* r = pat ? hfjson::find(*pat, "Regex") : nullptr;
      if (!r || !r->is_string()) c.unsupported("pre_tokenizer Split without a Regex pattern is not supported");
      regex = r->get<std::string>();
      const auto behavior = hfjson::opt_string(*p, c.file + ": pre_tokenizer Split", "behavior");
      if (behavior.value_or("Isolated") != "Isolated" ||
          hfjson::opt_bool(*p, c.file + ": pre_tokenizer Split", "invert").value_or(false))
        c.unsupported("pre_tokenizer Split other than behavior Isolated, not inverted, is not supported");
    } else if (type == "Digits" && !digits && !byte_level &&
               hfjson::opt_bool(*p, c.file + ": pre_tokenizer Digits", "individual_digits").value_or(false)) {
      digits = true;
    } else {
      c.unsupported("byte-level pre_tokenizer [", shape, "] is not supported");
    }
  }
  if (!byte_level) c.unsupported("pre_tokenizer [", shape, "] is not supported");
  if (regex.empty() && byte_level_regex) return digits ? "smollm" : "gpt-2";
  if (!regex.empty() && !byte_level_regex && !digits) {
    for (const KnownRegex& k : kRegexes)
      if (regex == k.regex) return std::string(k.pre) == "llama3" && !ignore_merges ? "dbrx" : k.pre;
    c.unsupported("pre_tokenizer Split regex '", regex, "' is not one halfbyte implements (gpt-2, llama3, qwen2)");
  }
  c.unsupported("pre_tokenizer [", shape, "] is not supported");
}

void set_tokenizer(GgufFile& f, const Ctx& c, const json& j) {
  using namespace hfjson;
  if (!j.is_object()) c.fail("not a JSON object");
  const json* model = find(j, "model");
  if (!model || !model->is_object()) c.fail("model is missing");
  const std::string mfile = c.file + ": model";
  std::string mtype = opt_string(*model, mfile, "type").value_or(find(*model, "merges") ? "BPE" : "");
  if (mtype != "BPE")
    c.unsupported("tokenizer model '", mtype, "' is not supported (BPE: GPT-2 byte-level or SentencePiece-style)");
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (!opt_string(*model, mfile, k).value_or("").empty()) c.unsupported("model.", k, " is not supported");
  const bool byte_fallback = opt_bool(*model, mfile, "byte_fallback").value_or(false);
  const bool ignore_merges = opt_bool(*model, mfile, "ignore_merges").value_or(false);

  // Which family.
  const auto pre = components(c, find(j, "pre_tokenizer"), "pre_tokenizer", "pretokenizers");
  const auto norm = components(c, find(j, "normalizer"), "normalizer", "normalizers");
  bool metaspace = false, prepend = false, replace = false, byte_level = false, nfc = false;
  for (const json* p : pre) {
    const std::string t = type_of(*p);
    if (t == "ByteLevel") byte_level = true;
    if (t != "Metaspace") continue;
    metaspace = true;
    const std::string pf = c.file + ": pre_tokenizer Metaspace";
    if (opt_string(*p, pf, "replacement").value_or(kSpace) != kSpace)
      c.unsupported("pre_tokenizer Metaspace with a replacement other than U+2581 is not supported");
    const auto scheme = opt_string(*p, pf, "prepend_scheme");
    prepend = scheme ? *scheme != "never" : opt_bool(*p, pf, "add_prefix_space").value_or(true);
  }
  for (const json* n : norm) {
    const std::string t = type_of(*n);
    if (t == "Prepend" && opt_string(*n, c.file + ": normalizer Prepend", "prepend").value_or("") == kSpace) {
      prepend = true;
    } else if (t == "Replace") {
      const json* pat = find(*n, "pattern");
      const json* s = pat ? find(*pat, "String") : nullptr;
      if (!s || !s->is_string() || s->get<std::string>() != " " ||
          opt_string(*n, c.file + ": normalizer Replace", "content").value_or("") != kSpace)
        c.unsupported("normalizer Replace other than ' ' -> U+2581 is not supported");
      replace = true;
    } else if (t == "NFC") {
      nfc = true;
    } else {
      c.unsupported("normalizer '", t, "' is not supported");
    }
  }
  const bool spm = byte_fallback || metaspace || replace;
  std::string pre_name = "default";
  if (spm) {
    if (nfc) c.unsupported("normalizer 'NFC' with SentencePiece-style BPE is not supported");
    if (!metaspace && !replace)
      c.unsupported("a byte-fallback BPE without a Metaspace pre-tokenizer or a ' ' -> U+2581 normalizer is "
                    "not supported");
    for (const json* p : pre)
      if (type_of(*p) != "Metaspace") c.unsupported("pre_tokenizer '", type_of(*p), "' with SentencePiece-style BPE");
  } else if (byte_level) {
    pre_name = byte_level_pre(c, pre, ignore_merges);
  } else {
    c.unsupported("a BPE model without a ByteLevel or Metaspace pre-tokenizer is not supported");
  }

  // Tokens: model.vocab, then added_tokens; holes up to the model's rows are padding.
  const json* vocab = find(*model, "vocab");
  if (!vocab || !vocab->is_object() || vocab->empty()) c.fail("model.vocab is missing, empty or not an object");
  const json* added = find(j, "added_tokens");
  if (added && !added->is_array()) c.fail("added_tokens should be a list");
  const GgufTensorInfo* emb = f.find_tensor("token_embd.weight");
  const int64_t rows = emb && emb->ne.size() == 2 ? emb->ne[1] : 0;
  const size_t limit = std::max<size_t>(vocab->size() + (added ? added->size() : 0), size_t(rows));
  Table t;
  t.text.resize(limit);
  t.type.assign(limit, kUserDefined);
  t.set.assign(limit, 0);
  for (const auto& [s, id] : vocab->items()) {
    if (!id.is_number_integer()) c.fail("model.vocab['", s, "'] should be a token id, is ", brief(id));
    t.add(c, id.get<int64_t>(), s, spm && is_byte_token(s) ? kByte : kNormal, "model.vocab");
  }
  if (added) {
    for (const json& a : *added) {
      const auto id = opt_int(a, c.file + ": added_tokens[]", "id", 0, std::numeric_limits<int32_t>::max());
      const auto content = opt_string(a, c.file + ": added_tokens[]", "content");
      if (!id || !content || content->empty()) c.fail("added_tokens: ", brief(a), " lacks an id or content");
      const bool special = opt_bool(a, c.file + ": added_tokens[]", "special").value_or(false);
      const bool looks_special = content->size() >= 4 && content->compare(0, 2, "<|") == 0 &&
                                 content->compare(content->size() - 2, 2, "|>") == 0;
      std::string text = *content;
      if (!special && !looks_special)  // llama.cpp pre-normalizes user-defined spaces
        for (size_t p; (p = text.find(kSpace)) != std::string::npos;) text.replace(p, 3, " ");
      if (*id < int64_t(t.text.size()) && t.set[size_t(*id)] && t.text[size_t(*id)] == *content) {
        t.id_of.erase(*content);  // the added entry restates (and retypes) a vocab entry
        t.set[size_t(*id)] = 0;
      }
      t.add(c, *id, text, special || looks_special ? kControl : kUserDefined, "added_tokens");
    }
  }
  size_t n = size_t(rows);
  for (size_t i = 0; i < limit; ++i)
    if (t.set[i]) n = std::max(n, i + 1);
  if (n == 0) c.fail("model.vocab is empty");
  t.text.resize(n);
  for (size_t i = 0; i < n; ++i)
    if (!t.set[i]) t.text[i] = "[PAD" + std::to_string(i) + "]";

  // Merges: "a b" strings or ["a", "b"] pairs, each making a token.
  const json* merges = find(*model, "merges");
  if (!merges || !merges->is_array()) c.fail("model.merges is missing or not a list");
  std::vector<std::string> merge_text;
  std::vector<float> score(n, 0.0f);
  std::vector<uint8_t> scored(n, 0);
  for (size_t r = 0; r < merges->size(); ++r) {
    const json& m = (*merges)[r];
    std::string a, b;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        c.fail("model.merges[", r, "] '", s, "' is not two tokens separated by one space");
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>(), b = m[1].get<std::string>();
    } else {
      c.fail("model.merges[", r, "] should be \"a b\" or [\"a\", \"b\"], is ", brief(m));
    }
    const int32_t ia = t.find(a), ib = t.find(b), iab = t.find(a + b);
    if (ia < 0 || ib < 0 || iab < 0)
      c.fail("model.merges[", r, "] ('", a, "', '", b, "') refers to a token not in model.vocab");
    if (!spm) {
      if (a.empty() || b.empty() || a.find(' ') != std::string::npos || b.find(' ') != std::string::npos)
        c.unsupported("model.merges[", r, "]: tokens with spaces cannot be written as GGUF merges");
      merge_text.push_back(a + " " + b);
    } else if (!scored[size_t(iab)]) {
      score[size_t(iab)] = -float(r);
      scored[size_t(iab)] = 1;
    }
  }
  if (spm)
    for (size_t i = 0; i < n; ++i)
      if (!scored[i]) score[i] = -float(merges->size()) - 1.0f;  // characters, bytes, specials: lowest

  // Special tokens: tokenizer_config.json, then the post-processor's template.
  const fs::path dir = fs::path(c.file).parent_path();
  json cfg = json::object();
  std::error_code ec;
  const fs::path cfg_path = dir / "tokenizer_config.json";
  if (fs::exists(cfg_path, ec)) cfg = read_file(cfg_path.string(), kMaxConfig);
  if (!cfg.is_object()) throw_error(ErrorKind::Format, cfg_path.string(), ": not a JSON object");
  const Ctx cc{cfg_path.string()};
  Template tpl;
  if (const json* pp = find(j, "post_processor")) read_post_processor(c, *pp, t, tpl);
  if (tpl.before.size() > 1 || tpl.after.size() > 1)
    c.unsupported("post_processor adds ", tpl.before.size(), " tokens before and ", tpl.after.size(),
                  " after the text (one BOS and one EOS at most)");
  auto id_for = [&](const char* key) -> int64_t {
    const std::string s = token_content(cc, cfg, key);
    if (s.empty()) return -1;
    const int32_t id = t.find(s);
    if (id < 0) cc.fail(key, " '", s, "' is not in ", c.file);
    return id;
  };
  const auto add_bos = opt_bool(cfg, cc.file, "add_bos_token"), add_eos = opt_bool(cfg, cc.file, "add_eos_token");
  int64_t bos = id_for("bos_token"), eos = id_for("eos_token"), pad = id_for("pad_token");
  int64_t unk = -1;
  if (const auto u = opt_string(*model, mfile, "unk_token")) {
    unk = t.find(*u);
    if (unk < 0) c.fail("model.unk_token '", *u, "' is not in model.vocab");
  } else if (spm) {
    unk = id_for("unk_token");
  }
  if (!tpl.before.empty() && (bos < 0 || !add_bos.has_value())) bos = tpl.before[0];
  if (!tpl.after.empty() && (eos < 0 || !add_eos.has_value())) eos = tpl.after[0];
  if (spm && unk >= 0) t.type[size_t(unk)] = kUnknown;

  f.set("tokenizer.ggml.model", meta::str(spm ? "llama" : "gpt2"));
  f.set("tokenizer.ggml.pre", meta::str(pre_name));
  f.set("tokenizer.ggml.tokens", meta::str_array(std::move(t.text)));
  t.type.resize(n);
  f.set("tokenizer.ggml.token_type", meta::i32_array(t.type));
  f.set("tokenizer.ggml.scores", meta::f32_array(score));
  if (!spm) f.set("tokenizer.ggml.merges", meta::str_array(std::move(merge_text)));
  if (bos >= 0) f.set("tokenizer.ggml.bos_token_id", meta::u32(uint64_t(bos)));
  if (eos >= 0) f.set("tokenizer.ggml.eos_token_id", meta::u32(uint64_t(eos)));
  if (unk >= 0) f.set("tokenizer.ggml.unknown_token_id", meta::u32(uint64_t(unk)));
  if (pad >= 0) f.set("tokenizer.ggml.padding_token_id", meta::u32(uint64_t(pad)));
  f.set("tokenizer.ggml.add_bos_token", meta::boolean(add_bos.value_or(!tpl.before.empty())));
  f.set("tokenizer.ggml.add_eos_token", meta::boolean(add_eos.value_or(!tpl.after.empty())));
  f.set("tokenizer.ggml.add_space_prefix", meta::boolean(spm && prepend));

  // Chat template: chat_template.jinja (transformers 5) or tokenizer_config.json.
  const fs::path jinja = dir / "chat_template.jinja";
  if (fs::exists(jinja, ec)) {
    const MappedFile m(jinja.string());
    if (m.size() > kMaxConfig) throw_error(ErrorKind::Format, jinja.string(), ": ", m.size(), " bytes is too long");
    f.set("tokenizer.chat_template", meta::str(std::string(reinterpret_cast<const char*>(m.data()), m.size())));
  } else if (const json* ct = find(cfg, "chat_template")) {
    std::string tmpl;
    if (ct->is_string()) {
      tmpl = ct->get<std::string>();
    } else if (ct->is_array()) {  // [{"name": ..., "template": ...}]: the "default" one, else the first
      for (const json& e : *ct) {
        const std::string ef = cc.file + ": chat_template[]";
        if (opt_string(e, ef, "name").value_or("") == "default" || tmpl.empty())
          tmpl = opt_string(e, ef, "template").value_or(tmpl);
      }
    } else {
      cc.fail("chat_template should be a string or a list of named templates");
    }
    if (!tmpl.empty()) f.set("tokenizer.chat_template", meta::str(std::move(tmpl)));
  }
}

}  // namespace

void add_hf_tokenizer(GgufFile& f, const std::string& tokenizer_json) {
  const Ctx c{tokenizer_json};
  set_tokenizer(f, c, hfjson::read_file(tokenizer_json, kMaxTokenizer));
}

}  // namespace halfbyte::io
