#include "fuzz_util.hpp"

#include <limits>

namespace halfbyte::fuzz {

void note(const char* stage, const Error* e) {
  static const bool verbose = [] {
    const char* v = std::getenv("HALFBYTE_FUZZ_VERBOSE");
    return v && *v && *v != '0';
  }();
  if (!verbose) return;
  if (e) std::fprintf(stderr, "fuzz: %s: Error: %s\n", stage, e->what());
  else std::fprintf(stderr, "fuzz: %s: ok\n", stage);
}

void check_value(const io::GgufValue& v, const std::string& key, int depth) {
  HB_FUZZ_CHECK(depth <= 4);
  switch (v.type) {
    case io::GgufType::U8: case io::GgufType::I8: case io::GgufType::U16: case io::GgufType::I16:
    case io::GgufType::U32: case io::GgufType::I32: case io::GgufType::U64: case io::GgufType::I64:
      HB_FUZZ_CHECK(v.is_integer());
      try {
        (void)v.as_int(key);  // a u64 above INT64_MAX is refused with an Error
      } catch (const Error&) {
        HB_FUZZ_CHECK(v.type == io::GgufType::U64);
      }
      break;
    case io::GgufType::F32: case io::GgufType::F64: (void)v.as_float(key); break;
    case io::GgufType::BOOL: (void)v.as_bool(key); break;
    case io::GgufType::STRING: (void)v.as_string(key).size(); break;
    case io::GgufType::ARRAY: {
      const io::GgufArray& a = v.as_array(key);
      for (const io::GgufValue& item : a.items) {
        HB_FUZZ_CHECK(item.type == a.type);
        check_value(item, key, depth + 1);
      }
      break;
    }
    default: HB_FUZZ_CHECK(!"value of an unknown GGUF type");
  }
}

void check_file(const io::GgufFile& f) {
  for (const auto& [key, v] : f.metadata()) {
    check_value(v, key, 0);
    // A wrong-type access is an Error, not a crash or a silent conversion.
    bool threw = false;
    try {
      if (v.type == io::GgufType::STRING) (void)v.as_array(key);
      else (void)v.as_string(key);
    } catch (const Error&) {
      threw = true;
    }
    HB_FUZZ_CHECK(threw);
  }
  (void)f.get_int("general.alignment", 0);
  HB_FUZZ_CHECK(f.alignment() >= 1 && (f.alignment() & (f.alignment() - 1)) == 0);

  for (const io::GgufTensorInfo& t : f.tensors()) {
    HB_FUZZ_CHECK(!t.ne.empty() && t.ne.size() <= 4);
    unsigned __int128 numel = 1;
    for (int64_t d : t.ne) {
      HB_FUZZ_CHECK(d > 0);
      numel *= uint64_t(d);
      HB_FUZZ_CHECK(numel <= uint64_t(std::numeric_limits<int64_t>::max()));
    }
    HB_FUZZ_CHECK(uint64_t(numel) == uint64_t(t.numel()));
    HB_FUZZ_CHECK(io::ggml_type_known(uint32_t(t.type)));
    const io::GgmlTypeInfo& ti = io::ggml_type_info(t.type);
    HB_FUZZ_CHECK(t.ne[0] % ti.block == 0);
    // The byte size is the exact size of the elements (no wrap-around).
    HB_FUZZ_CHECK(numel / unsigned(ti.block) * unsigned(ti.block_bytes) == t.nbytes);
    HB_FUZZ_CHECK(t.offset <= f.file_size() && t.nbytes <= f.file_size() - t.offset);
    if (f.format() == "gguf") HB_FUZZ_CHECK(t.offset % f.alignment() == 0);
    HB_FUZZ_CHECK(f.find_tensor(t.name) == &t);
    if (t.nbytes > 0) {
      const volatile uint8_t* p = f.data(t);
      (void)p[0];
      (void)p[t.nbytes - 1];
    }
  }
}

void exercise_tokenizer(const model::Tokenizer& tok) {
  static constexpr char kInvalid[] = "bad \xFF\xC0\x80 utf8 \xED\xA0\x80 \0 nul \xF0\x9F";  // and a NUL
  static const std::string_view kTexts[] = {
      "Hello world! It's 2024: 12345 apples, caf\xC3\xA9 na\xC3\xAFve \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80",
      "  leading spaces\n\n\ttabs\r\n 's 'RE  ",
      "<s>[INST] <|im_start|>user\n<|endoftext|>hi</s><|im_end|> \xE2\x96\x81x",
      std::string_view(kInvalid, sizeof kInvalid - 1),
      "",
  };
  const int32_t n = tok.n_vocab();
  HB_FUZZ_CHECK(n > 0);
  for (std::string_view text : kTexts) {
    for (int mode = 0; mode < 4; ++mode) {
      const std::vector<int32_t> ids = tok.encode(text, mode & 1, mode & 2);
      for (int32_t id : ids) HB_FUZZ_CHECK(id >= 0 && id < n);
      (void)tok.decode(ids, mode & 2);
      for (int32_t id : ids) (void)tok.token_to_piece(id, mode & 1);
    }
    (void)tok.pre_tokenize(text);
  }
  // Every id renders (bounded: a huge vocabulary is sampled).
  const int32_t step = n > 4096 ? n / 4096 : 1;
  std::vector<int32_t> all;
  for (int32_t id = 0; id < n; id += step) {
    all.push_back(id);
    (void)tok.token_text(id);
    (void)tok.token_type(id);
    (void)tok.is_eog(id);
  }
  (void)tok.decode(all, true);
  (void)tok.decode(all, false);
  for (int32_t id : {tok.bos(), tok.eos(), tok.eot(), tok.unk(), tok.pad()})
    HB_FUZZ_CHECK(id == model::kNoToken || (id >= 0 && id < n));
  bool threw = false;
  try {
    (void)tok.decode({n});
  } catch (const Error& e) {
    threw = e.kind() == ErrorKind::InvalidArgument;
  }
  HB_FUZZ_CHECK(threw);
}

void try_tokenizer(const io::GgufFile& f) {
  model::Tokenizer tok;
  try {
    tok = model::Tokenizer::from_gguf(f);
  } catch (const Error& e) {
    note("tokenizer", &e);
    return;
  }
  note("tokenizer");
  exercise_tokenizer(tok);
}

namespace {

// One encoding's promises: an id and a token type per token, ids in range, at most
// max_length tokens when truncating.
void check_encoding(const model::Encoding& e, int32_t n, int64_t max_length) {
  HB_FUZZ_CHECK(e.ids.size() == e.type_ids.size());
  for (int32_t id : e.ids) HB_FUZZ_CHECK(id >= 0 && id < n);
  for (int32_t t : e.type_ids) HB_FUZZ_CHECK(t >= 0);
  if (max_length > 0) HB_FUZZ_CHECK(e.ids.size() <= size_t(max_length));
}

}  // namespace

void exercise_wordpiece(const model::WordPieceTokenizer& tok) {
  static constexpr char kInvalid[] = "bad \xFF\xC0\x80 utf8 \xED\xA0\x80 \0 nul \xF0\x9F";  // and a NUL
  static const std::string kLong = std::string(150, 'a') + " " + std::string(40, '\xE4') + " hello";
  static const std::string_view kTexts[] = {
      "Hello, world! The cat's 12345 dogs.",
      "Caf\xC3\xA9 na\xC3\xAFve \xC3\x85ngstr\xC3\xB6m \xC3\x9C\xC3\x9F E\xCC\x81",  // precomposed and combining
      "\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C \xE3\x81\x93\xE3\x82\x93 \xED\x95\x9C",  // CJK, kana, hangul
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD \xE2\x80\x8D zwj",
      std::string_view(kInvalid, sizeof kInvalid - 1),
      kLong,
      "[CLS] hello [MASK] world [SEP] [PAD] [UNK] ##s \t\r\n\x01\x7F \xEF\xBF\xBD",
      "",
  };
  const int32_t n = tok.n_vocab();
  HB_FUZZ_CHECK(n > 0);
  HB_FUZZ_CHECK(tok.unk() >= 0 && tok.unk() < n);
  for (int32_t id : {tok.cls(), tok.sep(), tok.pad()}) HB_FUZZ_CHECK(id == -1 || (id >= 0 && id < n));
  for (std::string_view text : kTexts) {
    for (int64_t max_length : {int64_t(0), int64_t(3), int64_t(16)}) {
      try {
        check_encoding(tok.encode(text, max_length), n, max_length);
      } catch (const Error& e) {  // only a max_length below the special tokens' count
        HB_FUZZ_CHECK(max_length > 0 && e.kind() == ErrorKind::InvalidArgument);
      }
      try {
        check_encoding(tok.encode_pair(text, kTexts[0], max_length), n, max_length);
      } catch (const Error& e) {
        HB_FUZZ_CHECK(max_length > 0 && e.kind() == ErrorKind::InvalidArgument);
      }
    }
    for (int32_t id : tok.tokenize(text)) HB_FUZZ_CHECK(id >= 0 && id < n);
    (void)tok.words(text);
  }
  const int32_t step = n > 4096 ? n / 4096 : 1;
  for (int32_t id = 0; id < n; id += step) (void)tok.token_id(tok.token_text(id));
  int32_t prev = -1;
  for (int32_t id : tok.added_ids()) {
    HB_FUZZ_CHECK(id > prev && id < n);
    prev = id;
  }
  bool threw = false;
  try {
    (void)tok.token_text(n);
  } catch (const Error& e) {
    threw = e.kind() == ErrorKind::InvalidArgument;
  }
  HB_FUZZ_CHECK(threw);
}

}  // namespace halfbyte::fuzz
