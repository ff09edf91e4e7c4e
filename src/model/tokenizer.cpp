// Tokenizer loading (tokenizer.ggml.* metadata, every value checked), special
// tokens, encode dispatch and decoding. The algorithms live in tokenizer_spm.cpp,
// tokenizer_bpe.cpp and tokenizer_pretok.cpp.
#include "halfbyte/model/tokenizer.hpp"

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <limits>
#include <string>
#include <utility>

#include "halfbyte/core/error.hpp"
#include "halfbyte/io/gguf.hpp"
#include "model/tokenizer_impl.hpp"
#include "model/unicode.hpp"

namespace halfbyte::model {

namespace {

using Vocab = Tokenizer::Vocab;

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

template <class... Args>
[[noreturn]] void fail(const Vocab& v, Args&&... args) {
  throw_error(ErrorKind::Format, "tokenizer: ", v.path, ": ", std::forward<Args>(args)...);
}

// How llama.cpp configures a byte-level BPE vocabulary for each pre-tokenizer name.
struct PreInfo {
  const char* name;
  PreType type;
  bool clean_spaces;
  bool ignore_merges;
  bool add_bos;
};
constexpr PreInfo kPreTokenizers[] = {
    {"default", PreType::Default, true, false, false},
    {"gpt-2", PreType::Gpt2, true, false, false},
    {"phi-2", PreType::Gpt2, true, false, false},
    {"mpt", PreType::Gpt2, true, false, false},
    {"olmo", PreType::Gpt2, true, false, false},
    {"jais", PreType::Gpt2, true, false, false},
    {"gigachat", PreType::Gpt2, true, false, false},
    {"exaone4", PreType::Gpt2, true, false, false},
    {"llama3", PreType::Llama3, true, true, true},
    {"llama-v3", PreType::Llama3, true, true, true},
    {"llama-bpe", PreType::Llama3, true, true, true},
    {"falcon3", PreType::Llama3, true, true, true},
    {"pixtral", PreType::Llama3, true, true, true},
    {"dbrx", PreType::Llama3, true, false, false},
    {"smaug-bpe", PreType::Llama3, true, false, false},
    {"qwen2", PreType::Qwen2, false, false, false},
    {"deepseek-r1-qwen", PreType::Qwen2, false, false, false},
    {"megrez", PreType::Qwen2, true, false, false},
    {"stablelm2", PreType::Qwen2, true, false, false},
    {"smollm", PreType::Smollm, false, false, false},
    {"starcoder", PreType::Smollm, true, false, false},
    {"refact", PreType::Smollm, true, false, false},
    {"codeshell", PreType::Smollm, true, false, false},
    {"command-r", PreType::Smollm, false, false, false},
};

// Token texts llama.cpp recognises (see llama-vocab.cpp); matched in list order.
constexpr const char* kEotTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<EOT>", "_<EOT>", "[EOT]", ("<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"),
    "<end_of_utterance>"};
constexpr const char* kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    ("<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"), "[e~["};
constexpr const char* kEomTexts[] = {"<|eom_id|>"};
// FIM pad / repo / file-separator tokens also end generation in llama.cpp.
constexpr const char* kFimPadTexts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
constexpr const char* kFimRepTexts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"};
constexpr const char* kFimSepTexts[] = {"<|file_sep|>"};

// Reads an optional token id key; kNoToken if absent (then `fallback` if in range).
int32_t read_id(const Vocab& v, const io::GgufFile& f, const char* key, int32_t fallback) {
  if (!f.has(key)) return v.valid(fallback) ? fallback : kNoToken;
  const int64_t id = f.get(key).as_int(key);
  if (id < 0 || id >= int64_t(v.text.size()))
    fail(v, key, " = ", id, " is out of range (vocabulary of ", v.text.size(), " tokens)");
  return int32_t(id);
}

bool read_bool(const io::GgufFile& f, const char* key, bool fallback) {
  return f.has(key) ? f.get(key).as_bool(key) : fallback;
}

const io::GgufArray* read_array(const Vocab& v, const io::GgufFile& f, const char* key,
                                std::initializer_list<io::GgufType> types, size_t min_items) {
  if (!f.has(key)) return nullptr;
  const io::GgufArray& a = f.get(key).as_array(key);
  if (std::find(types.begin(), types.end(), a.type) == types.end())
    fail(v, key, " is an array of ", io::gguf_type_name(a.type), ", expected ",
         io::gguf_type_name(*types.begin()));
  if (a.items.size() < min_items)
    fail(v, key, " has ", a.items.size(), " entries, fewer than the ", min_items, " tokens");
  return &a;
}

void load_tokens(Vocab& v, const io::GgufFile& f) {
  const io::GgufArray* tokens = read_array(v, f, "tokenizer.ggml.tokens", {io::GgufType::STRING}, 0);
  if (!tokens) fail(v, "tokenizer.ggml.tokens is missing");
  const size_t n = tokens->items.size();
  if (n == 0) fail(v, "tokenizer.ggml.tokens is empty");
  if (n > size_t(std::numeric_limits<int32_t>::max()))
    fail(v, "tokenizer.ggml.tokens has ", n, " entries, more than int32 ids can address");
  const io::GgufArray* scores = read_array(v, f, "tokenizer.ggml.scores", {io::GgufType::F32, io::GgufType::I32}, n);
  const io::GgufArray* types = read_array(v, f, "tokenizer.ggml.token_type", {io::GgufType::I32}, n);

  v.text.resize(n);
  v.score.assign(n, 0.0f);
  v.type.assign(n, TokenType::Normal);
  for (size_t i = 0; i < n; ++i) {
    v.text[i] = tokens->items[i].as_string("tokenizer.ggml.tokens");
    if (v.text[i].empty()) v.text[i] = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp
    if (scores) v.score[i] = float(scores->items[i].as_float("tokenizer.ggml.scores"));
    if (types) {
      const int64_t t = types->items[i].as_int("tokenizer.ggml.token_type");
      v.type[i] = (t >= 0 && t <= 6) ? TokenType(t) : TokenType::Undefined;
    }
  }
  v.id_of.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const auto [it, fresh] = v.id_of.emplace(std::string_view(v.text[i]), int32_t(i));
    if (!fresh) fail(v, "duplicate token '", v.text[i], "' at ids ", it->second, " and ", i);
  }
  for (size_t i = 0; i < n; ++i) {
    if (v.type[i] != TokenType::Byte) continue;
    const std::string& t = v.text[i];
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>' || !std::isxdigit((unsigned char)t[3]) ||
        !std::isxdigit((unsigned char)t[4]))
      fail(v, "token ", i, " '", t, "' has type byte but is not of the form <0xNN>");
  }
}

void load_merges(Vocab& v, const io::GgufFile& f) {
  const char* key = "tokenizer.ggml.merges";
  const io::GgufArray* merges = read_array(v, f, key, {io::GgufType::STRING}, 0);
  if (!merges) fail(v, key, " is missing (needed by the gpt2 tokenizer)");
  if (merges->items.size() > size_t(std::numeric_limits<int32_t>::max()))
    fail(v, key, " has too many entries (", merges->items.size(), ")");
  v.merges.reserve(merges->items.size());
  std::string joined;
  for (size_t i = 0; i < merges->items.size(); ++i) {
    const std::string& m = merges->items[i].as_string(key);
    const size_t sp = m.find(' ', 1);
    if (sp == std::string::npos) fail(v, key, "[", i, "] '", m, "' is not two tokens separated by a space");
    const std::string_view a = std::string_view(m).substr(0, sp), b = std::string_view(m).substr(sp + 1);
    const int32_t ia = v.find(a), ib = v.find(b);
    if (ia == kNoToken || ib == kNoToken)
      fail(v, key, "[", i, "] '", m, "' refers to unknown token '", ia == kNoToken ? a : b, "'");
    joined.assign(a).append(b);
    const int32_t ij = v.find(joined);
    if (ij == kNoToken) fail(v, key, "[", i, "] '", m, "' makes '", joined, "', which is not a token");
    const uint64_t k = (uint64_t(uint32_t(ia)) << 32) | uint32_t(ib);
    v.merges.emplace(k, Vocab::Merge{int32_t(i), ij});  // a repeated pair keeps its first rank
  }
}

void mark_eog(Vocab& v, int32_t id) {
  if (id == kNoToken) return;
  v.eog[size_t(id)] = 1;
}

// The first token whose text is in `texts`, made a control token (as llama.cpp
// does for control-looking tokens typed otherwise).
template <size_t N>
int32_t detect(Vocab& v, const char* const (&texts)[N]) {
  for (const char* t : texts) {
    const int32_t id = v.find(t);
    if (id != kNoToken) {
      v.type[size_t(id)] = TokenType::Control;
      return id;
    }
  }
  return kNoToken;
}

void load_specials(Vocab& v, const io::GgufFile& f, bool default_add_bos, bool default_add_eos) {
  const bool spm = v.kind == Tokenizer::Kind::Spm;
  v.bos = read_id(v, f, "tokenizer.ggml.bos_token_id", spm ? 1 : kNoToken);
  v.eos = read_id(v, f, "tokenizer.ggml.eos_token_id", spm ? 2 : kNoToken);
  v.unk = read_id(v, f, "tokenizer.ggml.unknown_token_id", spm ? 0 : kNoToken);
  v.pad = read_id(v, f, "tokenizer.ggml.padding_token_id", kNoToken);
  v.eot = read_id(v, f, "tokenizer.ggml.eot_token_id", kNoToken);
  v.eom = read_id(v, f, "tokenizer.ggml.eom_token_id", kNoToken);
  if (v.eot == kNoToken) v.eot = detect(v, kEotTexts);
  if (v.eom == kNoToken) v.eom = detect(v, kEomTexts);

  v.add_bos = read_bool(f, "tokenizer.ggml.add_bos_token", default_add_bos);
  v.add_eos = read_bool(f, "tokenizer.ggml.add_eos_token", default_add_eos);
  if (v.add_bos && v.bos == kNoToken) fail(v, "tokenizer.ggml.add_bos_token is true but there is no BOS token id");
  if (v.add_eos && v.eos == kNoToken) fail(v, "tokenizer.ggml.add_eos_token is true but there is no EOS token id");

  v.eog.assign(v.text.size(), 0);
  int32_t fim = read_id(v, f, "tokenizer.ggml.fim_pad_token_id", kNoToken);
  mark_eog(v, fim != kNoToken ? fim : detect(v, kFimPadTexts));
  fim = read_id(v, f, "tokenizer.ggml.fim_rep_token_id", kNoToken);
  mark_eog(v, fim != kNoToken ? fim : detect(v, kFimRepTexts));
  fim = read_id(v, f, "tokenizer.ggml.fim_sep_token_id", kNoToken);
  mark_eog(v, fim != kNoToken ? fim : detect(v, kFimSepTexts));
  for (const char* t : kEogTexts) {
    const int32_t id = v.find(t);
    if (id == kNoToken) continue;
    v.type[size_t(id)] = TokenType::Control;
    mark_eog(v, id);
  }
  mark_eog(v, v.eos);
  mark_eog(v, v.eot);
  mark_eog(v, v.eom);

  for (size_t i = 0; i < v.text.size(); ++i) {
    const TokenType t = v.type[i];
    if (t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown)
      v.specials.push_back(int32_t(i));
  }
  std::stable_sort(v.specials.begin(), v.specials.end(),
                   [&](int32_t a, int32_t b) { return v.text[size_t(a)].size() > v.text[size_t(b)].size(); });
}

void load(Vocab& v, const io::GgufFile& f) {
  const std::string model = f.get_string("tokenizer.ggml.model", "");
  bool default_add_bos = false;
  if (model == "llama") {
    v.kind = Tokenizer::Kind::Spm;
    v.add_space_prefix = true;
    default_add_bos = true;
  } else if (model == "gpt2") {
    v.kind = Tokenizer::Kind::Bpe;
    v.pre_name = f.get_string("tokenizer.ggml.pre", "default");
    const PreInfo* info = nullptr;
    for (const PreInfo& p : kPreTokenizers)
      if (v.pre_name == p.name) info = &p;
    if (!info)
      throw_error(ErrorKind::Unsupported, "tokenizer: ", v.path, ": pre-tokenizer '", v.pre_name,
                  "' (tokenizer.ggml.pre) is not supported");
    v.pre = info->type;
    v.clean_spaces = info->clean_spaces;
    v.ignore_merges = info->ignore_merges;
    default_add_bos = info->add_bos;
  } else if (model.empty()) {
    fail(v, "tokenizer.ggml.model is missing");
  } else {
    throw_error(ErrorKind::Unsupported, "tokenizer: ", v.path, ": tokenizer model '", model,
                "' is not supported (llama or gpt2)");
  }
  v.add_space_prefix = read_bool(f, "tokenizer.ggml.add_space_prefix", v.add_space_prefix);

  load_tokens(v, f);
  if (v.kind == Tokenizer::Kind::Bpe) load_merges(v, f);

  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    if (v.kind == Tokenizer::Kind::Bpe) {
      v.byte_token[size_t(b)] = v.find(unicode::byte_to_utf8(uint8_t(b)));
    } else {
      const char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
      const char raw[2] = {char(b), 0};
      int32_t id = v.find(name);
      if (id == kNoToken) id = v.find(std::string_view(raw, 1));
      v.byte_token[size_t(b)] = id;
    }
  }
  load_specials(v, f, default_add_bos, false);
}

// Text of a byte token <0xNN> (validated at load).
char byte_of(const std::string& t) {
  return char(std::stoi(t.substr(3, 2), nullptr, 16));
}

std::string piece_of(const Vocab& v, int32_t id, bool special) {
  const std::string& t = v.text[size_t(id)];
  switch (v.type[size_t(id)]) {
    case TokenType::Control:
    case TokenType::Unknown:
      return special ? t : std::string();
    case TokenType::UserDefined:
      return t;
    case TokenType::Byte:
      return std::string(1, byte_of(t));
    case TokenType::Normal:
      break;
    default:  // unused, undefined
      return std::string();
  }
  std::string out;
  out.reserve(t.size());
  if (v.kind == Tokenizer::Kind::Spm) {
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, kSpace.size(), kSpace) == 0) {
        out += ' ';
        i += kSpace.size();
      } else {
        out += t[i++];
      }
    }
    return out;
  }
  // Byte-level: stand-in characters back to bytes (others are kept as they are).
  for (size_t i = 0; i < t.size();) {
    const unicode::Unit u = unicode::decode(t.data(), t.size(), i);
    const int b = u.cp == unicode::kInvalidByte ? -1 : unicode::cp_to_byte(u.cp);
    if (b >= 0) out += char(b);
    else out.append(t, i, u.len);
    i += u.len;
  }
  return out;
}

// llama.cpp's clean_up_tokenization for BPE vocabularies, three passes.
std::string clean_up_spaces(const std::string& s) {
  if (s.empty()) return s;
  // " ?", " !", " .", " ," -> drop the space.
  std::string a(1, s[0]);
  for (size_t i = 1; i < s.size(); ++i) {
    const char x = s[i];
    if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) a.pop_back();
    a += x;
  }
  // " ' " -> "'".
  std::string b(1, a[0]);
  std::vector<bool> dropped(a.size(), false);
  for (size_t i = 1; i < a.size(); ++i) {
    const char x = a[i];
    if (x == '\'' && i + 1 < a.size() && a[i - 1] == ' ' && !dropped[i - 1] && a[i + 1] == ' ') {
      b.pop_back();
      b += x;
      dropped[++i] = true;
      continue;
    }
    b += x;
  }
  // " 's", " 'm", " 're", " 've" -> drop the space.
  std::string c(1, b[0]);
  for (size_t i = 1; i < b.size(); ++i) {
    const char x = b[i];
    if (b[i - 1] == ' ' && x == '\'' && i + 1 < b.size()) {
      const char x1 = b[i + 1];
      const char x2 = i + 2 < b.size() ? b[i + 2] : '\0';
      if (x1 == 's' || x1 == 'm' || (i + 2 < b.size() && (x1 == 'r' || x1 == 'v') && x2 == 'e')) c.pop_back();
    }
    c += x;
  }
  return c;
}

}  // namespace

Tokenizer::Tokenizer() {
  static const std::shared_ptr<const Vocab> empty = std::make_shared<Vocab>();
  v_ = empty;
}

Tokenizer Tokenizer::from_gguf(const io::GgufFile& f) {
  auto v = std::make_shared<Vocab>();
  v->path = f.path();
  try {
    load(*v, f);
  } catch (const Error& e) {
    // Metadata type errors from the GGUF reader do not name the file: add it.
    if (std::string(e.what()).find(f.path()) != std::string::npos) throw;
    throw Error(e.kind(), "tokenizer: " + f.path() + ": " + e.what());
  }
  return Tokenizer(std::move(v));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  const Vocab& v = *v_;
  // Split out special tokens, longest first (llama.cpp's tokenizer_st_partition):
  // fragments are raw text [off, off + len) or a token id.
  struct Fragment {
    int32_t id;
    size_t off, len;
  };
  std::vector<Fragment> frags, next;
  if (!text.empty()) frags.push_back({kNoToken, 0, text.size()});
  for (int32_t sid : v.specials) {
    if (!parse_special && v.type[size_t(sid)] != TokenType::UserDefined) continue;
    const std::string& st = v.text[size_t(sid)];
    if (text.find(st) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& fr : frags) {
      if (fr.id != kNoToken) {
        next.push_back(fr);
        continue;
      }
      const std::string_view window = text.substr(0, fr.off + fr.len);
      size_t pos = fr.off;
      for (size_t m; (m = window.find(st, pos)) != std::string_view::npos; pos = m + st.size()) {
        if (m > pos) next.push_back({kNoToken, pos, m - pos});
        next.push_back({sid, 0, 0});
      }
      if (pos < fr.off + fr.len) next.push_back({kNoToken, pos, fr.off + fr.len - pos});
    }
    frags.swap(next);
  }

  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && v.add_bos) out.push_back(v.bos);
  bool after_special = true;  // SPM: prefix a space at the start and after special tokens
  std::string buf;
  for (const Fragment& fr : frags) {
    if (fr.id != kNoToken) {
      out.push_back(fr.id);
      after_special = true;
      continue;
    }
    const std::string_view raw = text.substr(fr.off, fr.len);
    if (v.kind == Kind::Bpe) {
      bpe_tokenize(v, raw, out);
      continue;
    }
    buf.clear();
    if (v.add_space_prefix && after_special) buf.append(kSpace);
    for (char c : raw) {
      if (c == ' ') buf.append(kSpace);
      else buf += c;
    }
    spm_tokenize(v, buf, out);
    after_special = false;
  }
  if (add_special && v.add_eos) out.push_back(v.eos);
  return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool special) const {
  if (!v_->valid(id)) throw_invalid("tokenizer: token id ", id, " is out of range [0, ", n_vocab(), ")");
  return piece_of(*v_, id, special);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool special) const {
  const Vocab& v = *v_;
  std::string out;
  bool strip_space = v.add_space_prefix;  // only the first token's piece
  for (int32_t id : ids) {
    if (!v.valid(id)) throw_invalid("tokenizer: token id ", id, " is out of range [0, ", n_vocab(), ")");
    const std::string piece = piece_of(v, id, special);
    out.append(piece, (strip_space && !piece.empty() && piece[0] == ' ') ? 1 : 0, std::string::npos);
    strip_space = false;
  }
  return v.clean_spaces ? clean_up_spaces(out) : out;
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
  std::vector<std::string> words;
  if (v_->kind == Kind::Spm) {
    if (!text.empty()) words.emplace_back(text);
    return words;
  }
  for (const auto& [b, e] : pre_tokenize_ranges(v_->pre, text)) words.emplace_back(text.substr(b, e - b));
  return words;
}

int32_t Tokenizer::n_vocab() const noexcept { return int32_t(v_->text.size()); }
Tokenizer::Kind Tokenizer::kind() const noexcept { return v_->kind; }
size_t Tokenizer::memory_bytes() const noexcept {
  if (!v_) return 0;
  const Vocab& v = *v_;
  constexpr size_t kMallocOverhead = 16;  // glibc: header and rounding per block
  constexpr size_t kSso = 15;             // libstdc++: strings this short live inside the object
  size_t n = sizeof(Vocab) + v.text.capacity() * sizeof(std::string);
  for (const std::string& t : v.text)
    if (t.capacity() > kSso) n += t.capacity() + 1 + kMallocOverhead;
  n += v.score.capacity() * sizeof(float) + v.type.capacity() * sizeof(TokenType);
  // Hash tables: a bucket array plus one node per entry (next pointer, value and,
  // for string keys, the cached hash).
  n += v.id_of.bucket_count() * sizeof(void*) +
       v.id_of.size() * (sizeof(void*) + sizeof(std::pair<const std::string_view, int32_t>) + sizeof(size_t) +
                         kMallocOverhead);
  n += v.merges.bucket_count() * sizeof(void*) +
       v.merges.size() * (sizeof(void*) + sizeof(std::pair<const uint64_t, Vocab::Merge>) + kMallocOverhead);
  n += v.specials.capacity() * sizeof(int32_t) + v.eog.capacity();
  return n;
}

const std::string& Tokenizer::pre() const noexcept { return v_->pre_name; }
int32_t Tokenizer::bos() const noexcept { return v_->bos; }
int32_t Tokenizer::eos() const noexcept { return v_->eos; }
int32_t Tokenizer::eot() const noexcept { return v_->eot; }
int32_t Tokenizer::unk() const noexcept { return v_->unk; }
int32_t Tokenizer::pad() const noexcept { return v_->pad; }
bool Tokenizer::add_bos() const noexcept { return v_->add_bos; }
bool Tokenizer::add_eos() const noexcept { return v_->add_eos; }
bool Tokenizer::is_eog(int32_t id) const noexcept { return v_->valid(id) && v_->eog[size_t(id)]; }

const std::string& Tokenizer::token_text(int32_t id) const {
  if (!v_->valid(id)) throw_invalid("tokenizer: token id ", id, " is out of range [0, ", n_vocab(), ")");
  return v_->text[size_t(id)];
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (!v_->valid(id)) throw_invalid("tokenizer: token id ", id, " is out of range [0, ", n_vocab(), ")");
  return v_->type[size_t(id)];
}

}  // namespace halfbyte::model
