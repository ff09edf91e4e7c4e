// Loading a WordPiece tokenizer from Hugging Face files:
//
//   tokenizer.json   model {type: WordPiece, vocab {token: id}, unk_token,
//                    continuing_subword_prefix, max_input_chars_per_word};
//                    normalizer BertNormalizer or null; pre_tokenizer
//                    BertPreTokenizer; post_processor TemplateProcessing,
//                    BertProcessing or null; added_tokens. Its truncation and
//                    padding sections are ignored, as transformers does unless a
//                    call asks for them.
//   vocab.txt        one token per line (id = line number; only "\n" ends a line,
//                    as transformers reads it), with tokenizer_config.json's
//                    do_lower_case, strip_accents, tokenize_chinese_chars and
//                    special tokens; the BERT template [CLS] a [SEP] b [SEP].
//
// tokenizer_config.json also gives model_max_length. Every field is checked:
// a malformed file gives Error(Format), a valid one this loader does not
// implement (another normalizer or pre-tokenizer) Error(Unsupported).
#include <algorithm>
#include <filesystem>
#include <limits>

#include "halfbyte/core/error.hpp"
#include "io/hf_json.hpp"
#include "io/mapped_file.hpp"
#include "model/tokenizer_wordpiece_impl.hpp"

namespace halfbyte::model {

namespace fs = std::filesystem;
using io::hfjson::json;
namespace hj = io::hfjson;

namespace {

constexpr uint64_t kMaxTokenizer = uint64_t(512) << 20;
constexpr uint64_t kMaxConfig = uint64_t(16) << 20;
constexpr int64_t kMaxVocab = int64_t(1) << 24;

// A special token in tokenizer_config.json: a string or an AddedToken object.
std::optional<std::string> token_name(const json& cfg, const std::string& file, const char* key) {
  const json* v = hj::find(cfg, key);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object()) {
    if (auto c = hj::opt_string(*v, file + ": " + key, "content")) return c;
  }
  throw_error(ErrorKind::Format, file, ": ", key, " should be a token string, is ", hj::brief(*v));
}

// tokenizer_config.json beside `dir`, if any: options and model_max_length.
void read_tokenizer_config(const fs::path& dir, WordPieceTokenizer::Impl& t, bool options) {
  std::error_code ec;
  const fs::path p = dir / "tokenizer_config.json";
  if (!fs::exists(p, ec)) return;
  const std::string file = p.string();
  const json c = hj::read_file(file, kMaxConfig);
  if (!c.is_object()) throw_error(ErrorKind::Format, file, ": not a JSON object");
  // transformers writes 1e30 ("no limit") when it does not know: ignore that.
  if (const json* m = hj::find(c, "model_max_length"); m && m->is_number_integer() && m->get<int64_t>() > 0 &&
                                                       m->get<int64_t>() <= kMaxVocab)
    t.model_max_length = m->get<int64_t>();
  if (!options) return;
  WordPieceConfig& w = t.cfg;
  if (auto v = hj::opt_bool(c, file, "do_lower_case")) w.lowercase = *v;
  if (auto v = hj::opt_bool(c, file, "tokenize_chinese_chars")) w.handle_chinese_chars = *v;
  if (auto v = hj::opt_bool(c, file, "strip_accents")) w.strip_accents = *v ? 1 : 0;
  if (auto v = hj::opt_bool(c, file, "do_basic_tokenize"); v && !*v)
    throw_error(ErrorKind::Unsupported, file, ": do_basic_tokenize = false is not supported");
  if (auto v = token_name(c, file, "unk_token")) w.unk_token = *v;
  if (auto v = token_name(c, file, "cls_token")) w.cls_token = *v;
  if (auto v = token_name(c, file, "sep_token")) w.sep_token = *v;
  if (auto v = token_name(c, file, "pad_token")) w.pad_token = *v;
}

// Reads {"id", "content", "normalized", "single_word"} of one added token.
AddedToken added_token(const json& a, const std::string& where, bool default_normalized) {
  if (!a.is_object()) throw_error(ErrorKind::Format, where, " is not an object");
  AddedToken t;
  const auto content = hj::opt_string(a, where, "content");
  if (!content || content->empty()) throw_error(ErrorKind::Format, where, ": content is missing or empty");
  t.content = *content;
  t.normalized = hj::opt_bool(a, where, "normalized").value_or(default_normalized);
  t.single_word = hj::opt_bool(a, where, "single_word").value_or(false);
  t.id = int32_t(hj::opt_int(a, where, "id", 0, kMaxVocab - 1).value_or(-1));
  return t;
}

// Adds `tok` -> id to the vocabulary; an id given to two different strings is an error.
// Ids are below `limit`, the file's count of entries (vocab and added tokens), so
// that a few bytes cannot make a table of 2^24 tokens (512 MB).
void put(WordPieceTokenizer::Impl& t, const std::string& file, const std::string& tok, int32_t id, size_t limit) {
  if (size_t(id) >= limit)
    throw_error(ErrorKind::Format, file, ": token '", tok, "' has id ", id, ", but the file has ", limit,
                " tokens (ids from 0)");
  if (size_t(id) >= t.tokens.size()) t.tokens.resize(size_t(id) + 1);
  std::string& slot = t.tokens[size_t(id)];
  if (!slot.empty() && slot != tok)
    throw_error(ErrorKind::Format, file, ": id ", id, " is given to both '", slot, "' and '", tok, "'");
  slot = tok;
  t.ids[tok] = id;
}

// post_processor -> the single and pair templates.
void read_post_processor(const json* pp, const std::string& file, WordPieceTokenizer::Impl& t) {
  const std::string where = file + ": post_processor";
  if (!pp) {  // no special tokens at all
    t.single = {{0, {}, 0}};
    t.pair = {{0, {}, 0}, {1, {}, 1}};
    return;
  }
  const std::string type = hj::opt_string(*pp, where, "type").value_or("");
  auto special = [&](const json* v, const char* name) -> TemplatePiece {
    // BertProcessing: "cls": ["[CLS]", 101]
    if (!v || !v->is_array() || v->size() != 2 || !(*v)[0].is_string() || !(*v)[1].is_number_unsigned() ||
        (*v)[1].get<uint64_t>() >= uint64_t(kMaxVocab))
      throw_error(ErrorKind::Format, where, ": ", name, " should be [token, id], is ",
                  v ? hj::brief(*v) : std::string("missing"));
    return {-1, {int32_t((*v)[1].get<uint64_t>())}, 0};
  };
  if (type == "BertProcessing") {
    TemplatePiece cls = special(hj::find(*pp, "cls"), "cls"), sep = special(hj::find(*pp, "sep"), "sep");
    TemplatePiece sep1 = sep;
    sep1.type_id = 1;
    t.single = {cls, {0, {}, 0}, sep};
    t.pair = {cls, {0, {}, 0}, sep, {1, {}, 1}, sep1};
    return;
  }
  if (type != "TemplateProcessing")
    throw_error(ErrorKind::Unsupported, where, ": type '", type,
                "' is not supported for WordPiece (TemplateProcessing, BertProcessing)");
  const json* specials = hj::find(*pp, "special_tokens");
  auto parse = [&](const char* key, int n_seq) {
    const json* items = hj::find(*pp, key);
    const std::string at = where + ": " + key;
    if (!items || !items->is_array() || items->size() > 64)
      throw_error(ErrorKind::Format, at, " should be a list of template pieces");
    std::vector<TemplatePiece> out;
    int seen = 0;
    for (const json& it : *items) {
      const json* seq = hj::find(it, "Sequence");
      const json* sp = hj::find(it, "SpecialToken");
      const json* body = seq ? seq : sp;
      if (!body || !body->is_object()) throw_error(ErrorKind::Format, at, ": piece ", hj::brief(it), " is not valid");
      TemplatePiece p;
      p.type_id = int32_t(hj::opt_int(*body, at, "type_id", 0, 255).value_or(0));
      const std::string id = hj::opt_string(*body, at, "id").value_or("");
      if (seq) {
        if (id != "A" && id != "B") throw_error(ErrorKind::Format, at, ": sequence id '", id, "' (A or B)");
        p.sequence = id == "A" ? 0 : 1;
        if (p.sequence >= n_seq) throw_error(ErrorKind::Format, at, ": a single-text template uses sequence B");
        seen |= 1 << p.sequence;
      } else {
        const json* def = specials ? hj::find(*specials, id.c_str()) : nullptr;
        const json* ids = def ? hj::find(*def, "ids") : nullptr;
        if (!ids || !ids->is_array() || ids->size() > 16)
          throw_error(ErrorKind::Format, at, ": special token '", id, "' is not in special_tokens with its ids");
        for (const json& x : *ids) {
          if (!x.is_number_unsigned() || x.get<uint64_t>() >= uint64_t(kMaxVocab))
            throw_error(ErrorKind::Format, at, ": special token '", id, "' has id ", hj::brief(x));
          p.ids.push_back(int32_t(x.get<uint64_t>()));
        }
      }
      out.push_back(std::move(p));
    }
    if (seen != (1 << n_seq) - 1)
      throw_error(ErrorKind::Format, at, ": the template should hold ", n_seq == 1 ? "$A" : "$A and $B", " once");
    return out;
  };
  t.single = parse("single", 1);
  t.pair = parse("pair", 2);
}

}  // namespace

void finish_wordpiece(WordPieceTokenizer::Impl& t) {
  const int64_t n = int64_t(t.tokens.size());
  auto id_of = [&](const std::string& tok) {
    const auto it = t.ids.find(tok);
    return it == t.ids.end() ? -1 : it->second;
  };
  t.unk = id_of(t.cfg.unk_token);
  if (t.unk < 0)
    throw_error(ErrorKind::Format, t.path, ": the unknown token '", t.cfg.unk_token, "' is not in the vocabulary");
  t.pad = id_of(t.cfg.pad_token);
  // [CLS] and [SEP]: the first and last special tokens of the single template.
  if (!t.single.empty() && t.single.front().ids.size() == 1) t.cls = t.single.front().ids[0];
  if (!t.single.empty() && t.single.back().ids.size() == 1) t.sep = t.single.back().ids[0];
  for (const auto* tmpl : {&t.single, &t.pair})
    for (const TemplatePiece& p : *tmpl)
      for (const int32_t id : p.ids)
        if (id >= n)
          throw_error(ErrorKind::Format, t.path, ": the post-processor uses token id ", id,
                      ", outside the vocabulary of ", n);
  if (t.cls >= 0 && t.cls < n) t.cfg.cls_token = t.tokens[size_t(t.cls)];
  if (t.sep >= 0 && t.sep < n) t.cfg.sep_token = t.tokens[size_t(t.sep)];
  for (AddedToken& a : t.added) {
    if (a.normalized) a.content32 = t.normalize(a.content);
    if (a.normalized && a.content32.empty()) a.normalized = false;  // nothing left to match on
  }
  std::stable_sort(t.added.begin(), t.added.end(), [](const AddedToken& a, const AddedToken& b) {
    return (a.normalized ? a.content32.size() : a.content.size()) > (b.normalized ? b.content32.size() : b.content.size());
  });
  if (t.cfg.max_input_chars_per_word < 1) t.cfg.max_input_chars_per_word = 1;
}

namespace {

// tokens[id] -> the tokenizer, the vocab.txt way: [CLS] a [SEP] templates, the
// special tokens matched whole. A token repeated later takes the later id (as a
// Python dict would).
std::shared_ptr<WordPieceTokenizer::Impl> vocab_tokenizer(std::vector<std::string> tokens, const WordPieceConfig& cfg,
                                                         const std::string& path) {
  auto t = std::make_shared<WordPieceTokenizer::Impl>();
  t->path = path;
  t->cfg = cfg;
  if (int64_t(tokens.size()) > kMaxVocab) throw_error(ErrorKind::Format, path, ": more than ", kMaxVocab, " tokens");
  t->tokens = std::move(tokens);
  for (size_t id = 0; id < t->tokens.size(); ++id) t->ids[t->tokens[id]] = int32_t(id);
  const auto cls = t->ids.find(cfg.cls_token), sep = t->ids.find(cfg.sep_token);
  if (cls == t->ids.end() || sep == t->ids.end())
    throw_error(ErrorKind::Format, path, ": the special tokens '", cfg.cls_token, "' and '", cfg.sep_token,
                "' should be in the vocabulary");
  const int32_t c = cls->second, s = sep->second;
  t->single = {{-1, {c}, 0}, {0, {}, 0}, {-1, {s}, 0}};
  t->pair = {{-1, {c}, 0}, {0, {}, 0}, {-1, {s}, 0}, {1, {}, 1}, {-1, {s}, 1}};
  // The special tokens are matched whole in the text, as transformers does.
  for (const std::string& name : {cfg.pad_token, cfg.unk_token, cfg.cls_token, cfg.sep_token, std::string("[MASK]")}) {
    const auto it = t->ids.find(name);
    if (it != t->ids.end()) t->added.push_back({name, {}, it->second, false, false});
  }
  finish_wordpiece(*t);
  return t;
}

std::shared_ptr<WordPieceTokenizer::Impl> load_vocab_txt(const std::string& path, const WordPieceConfig& cfg) {
  const io::MappedFile m(path);
  const char* p = reinterpret_cast<const char*>(m.data());
  const char* end = p + m.size();
  std::vector<std::string> tokens;
  while (p < end) {
    const char* nl = std::find(p, end, '\n');
    if (int64_t(tokens.size()) >= kMaxVocab) throw_error(ErrorKind::Format, path, ": more than ", kMaxVocab, " tokens");
    tokens.emplace_back(p, nl);
    p = nl == end ? end : nl + 1;
  }
  return vocab_tokenizer(std::move(tokens), cfg, path);
}

}  // namespace

WordPieceTokenizer WordPieceTokenizer::from_vocab_txt(const std::string& path, const WordPieceConfig& cfg) {
  return WordPieceTokenizer(load_vocab_txt(path, cfg));
}

WordPieceTokenizer WordPieceTokenizer::from_vocab(std::vector<std::string> tokens, const WordPieceConfig& cfg,
                                                  const std::string& where) {
  return WordPieceTokenizer(vocab_tokenizer(std::move(tokens), cfg, where));
}

WordPieceTokenizer WordPieceTokenizer::from_tokenizer_json(const std::string& path) {
  auto t = std::make_shared<Impl>();
  t->path = path;
  const json j = hj::read_file(path, kMaxTokenizer);
  if (!j.is_object()) throw_error(ErrorKind::Format, path, ": not a JSON object");
  const json* model = hj::find(j, "model");
  const std::string mwhere = path + ": model";
  if (!model || !model->is_object()) throw_error(ErrorKind::Format, path, ": model is missing or not an object");
  const std::string type = hj::opt_string(*model, mwhere, "type").value_or("");
  if (type != "WordPiece")
    throw_error(ErrorKind::Unsupported, path, ": model type '", type, "' is not WordPiece");
  WordPieceConfig& c = t->cfg;
  if (auto u = hj::opt_string(*model, mwhere, "unk_token")) c.unk_token = *u;
  if (auto u = hj::opt_string(*model, mwhere, "continuing_subword_prefix")) c.continuing_prefix = *u;
  c.max_input_chars_per_word =
      int(hj::opt_int(*model, mwhere, "max_input_chars_per_word", 1, 1 << 20).value_or(100));
  const json* vocab = hj::find(*model, "vocab");
  if (!vocab || !vocab->is_object() || vocab->empty())
    throw_error(ErrorKind::Format, mwhere, ": vocab should be a non-empty object {token: id}");
  if (int64_t(vocab->size()) > kMaxVocab) throw_error(ErrorKind::Format, mwhere, ": more than ", kMaxVocab, " tokens");
  const json* added = hj::find(j, "added_tokens");
  const size_t limit = vocab->size() + (added && added->is_array() ? added->size() : 0);
  for (const auto& [tok, idv] : vocab->items()) {
    if (!idv.is_number_unsigned() || idv.get<uint64_t>() >= uint64_t(kMaxVocab))
      throw_error(ErrorKind::Format, mwhere, ": vocab['", tok, "'] = ", hj::brief(idv), " is not a token id");
    put(*t, path, tok, int32_t(idv.get<uint64_t>()), limit);
  }

  const json* norm = hj::find(j, "normalizer");
  const std::string nwhere = path + ": normalizer";
  if (!norm) {
    c.clean_text = c.handle_chinese_chars = c.lowercase = false;
    c.strip_accents = 0;
  } else {
    const std::string nt = hj::opt_string(*norm, nwhere, "type").value_or("");
    if (nt != "BertNormalizer")
      throw_error(ErrorKind::Unsupported, nwhere, ": type '", nt, "' is not supported for WordPiece (BertNormalizer)");
    c.clean_text = hj::opt_bool(*norm, nwhere, "clean_text").value_or(true);
    c.handle_chinese_chars = hj::opt_bool(*norm, nwhere, "handle_chinese_chars").value_or(true);
    c.lowercase = hj::opt_bool(*norm, nwhere, "lowercase").value_or(true);
    const auto sa = hj::opt_bool(*norm, nwhere, "strip_accents");
    c.strip_accents = sa ? (*sa ? 1 : 0) : -1;
  }
  const json* pre = hj::find(j, "pre_tokenizer");
  const std::string pt = pre ? hj::opt_string(*pre, path + ": pre_tokenizer", "type").value_or("") : "null";
  if (pt != "BertPreTokenizer")
    throw_error(ErrorKind::Unsupported, path, ": pre_tokenizer '", pt,
                "' is not supported for WordPiece (BertPreTokenizer)");
  read_post_processor(hj::find(j, "post_processor"), path, *t);

  if (added) {
    if (!added->is_array()) throw_error(ErrorKind::Format, path, ": added_tokens should be a list");
    for (size_t i = 0; i < added->size(); ++i) {
      const std::string where = path + ": added_tokens[" + std::to_string(i) + "]";
      AddedToken a = added_token((*added)[i], where, true);
      if (a.id < 0) throw_error(ErrorKind::Format, where, ": id is missing");
      put(*t, path, a.content, a.id, limit);
      t->added.push_back(std::move(a));
    }
  }
  if (const json* pad = hj::find(j, "padding"); pad && pad->is_object())
    if (auto pt2 = hj::opt_string(*pad, path + ": padding", "pad_token")) c.pad_token = *pt2;
  read_tokenizer_config(fs::path(path).parent_path(), *t, false);
  finish_wordpiece(*t);
  return WordPieceTokenizer(std::move(t));
}

WordPieceTokenizer WordPieceTokenizer::from_folder(const std::string& dir) {
  std::error_code ec;
  const fs::path d(dir);
  if (fs::exists(d / "tokenizer.json", ec)) return from_tokenizer_json((d / "tokenizer.json").string());
  if (!fs::exists(d / "vocab.txt", ec))
    throw_error(ErrorKind::Io, dir, ": no tokenizer.json nor vocab.txt in this folder: No such file or directory");
  Impl cfg_only;
  read_tokenizer_config(d, cfg_only, true);
  auto t = load_vocab_txt((d / "vocab.txt").string(), cfg_only.cfg);
  t->model_max_length = cfg_only.model_max_length;
  return WordPieceTokenizer(std::move(t));
}

}  // namespace halfbyte::model
