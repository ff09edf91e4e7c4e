// `halfbyte embed -m MODEL -f TEXTS -o OUT.npy` and `halfbyte classify -m MODEL
// "text" ...`: a BERT-family encoder (include/halfbyte/model/encoder.hpp) over the
// lines of a text file or the arguments. embed writes a float32 [n, dim] .npy file
// (numpy's format 1.0, written here), via a temp name renamed when complete.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/commands.hpp"
#include "halfbyte/core/error.hpp"
#include "halfbyte/model/encoder.hpp"

namespace halfbyte::cli {
namespace {

// One text per line; an empty line is an empty text (row i is line i), a final
// newline does not start another text, and a '\r' before '\n' is dropped.
std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_error(ErrorKind::Io, path, ": cannot open the text file (No such file or directory?)");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  if (in.bad()) throw_error(ErrorKind::Io, path, ": cannot read the text file");
  return lines;
}

// numpy's .npy format 1.0: magic, version, little-endian u16 header length, a
// Python dict literal padded with spaces to a multiple of 64 bytes (with the
// 10-byte preamble) and ended by '\n', then the little-endian float32 data.
void write_npy(const std::string& path, const std::vector<float>& data, int64_t rows, int64_t cols) {
  const uint16_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  if (first != 1) throw_error(ErrorKind::Unsupported, path, ": .npy output needs a little-endian CPU");
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw_error(ErrorKind::Io, path, ": cannot create ", tmp, ": ", std::strerror(errno));
  const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, uint8_t(header.size() & 0xff),
                                 uint8_t(header.size() >> 8)};
  bool ok = std::fwrite(pre, 1, sizeof(pre), f) == sizeof(pre) &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(data.data(), sizeof(float), data.size(), f) == data.size();
  const int err = errno;
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(ok ? errno : err);
    std::remove(tmp.c_str());
    throw_error(ErrorKind::Io, path, ": cannot write ", ok ? "(rename of " + tmp + ")" : tmp, ": ", why);
  }
}

// A JSON string literal (UTF-8 passed through).
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

model::ScoreFunction parse_function(const std::string& v) {
  if (v == "softmax") return model::ScoreFunction::Softmax;
  if (v == "sigmoid") return model::ScoreFunction::Sigmoid;
  if (v == "none") return model::ScoreFunction::None;
  throw_invalid("--function expects softmax, sigmoid or none, got '", v, "'");
}

}  // namespace

int cmd_embed(const Args& args) {
  if (wants_ray(args)) cmd_embed_ray(args);
  std::string path, text_path, out_path;
  model::EncoderOptions o;
  int normalize = -1, batch_size = 64;
  ArgReader r(args, "embed");
  while (!r.done()) {
    const std::string& a = r.next();
    if (a == "-m" || a == "--model") path = r.value(a);
    else if (a == "-f" || a == "--file") text_path = r.value(a);
    else if (a == "-o" || a == "--output") out_path = r.value(a);
    else if (a == "--dtype") o.dtype = r.value(a);
    else if (a == "--batch-size") batch_size = int(r.integer(a, 1, 1 << 20));
    else if (a == "--max-length") o.max_length = r.integer(a, 2, 1 << 20);
    else if (a == "--no-normalize") normalize = 0;
    else if (a == "-t" || a == "--threads") o.n_threads = int(r.integer(a, 1, 1024));
    else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: halfbyte embed -m MODEL -f TEXTS -o OUT.npy [--dtype q8_0] [--batch-size N]\n"
          "                      [--no-normalize] [--max-length N] [-t THREADS]\n"
          "Sentence embeddings of each line of TEXTS with a BERT-family encoder (a Hugging Face\n"
          "folder: BERT, MiniLM, bge, e5, DistilBERT), written to OUT.npy as float32 [lines, dim]\n"
          "(numpy.load reads it). One text per line: row i is line i, an empty line embeds an\n"
          "empty text ([CLS] [SEP]); a '\\r' before the newline is dropped. Pooling and L2\n"
          "normalization as the model says (sentence-transformers' files); --no-normalize\n"
          "skips the normalization. --dtype f32 keeps the weights float (default q8_0).\n"
          "--batch-size texts per packed forward pass (default 64); --max-length tokens per\n"
          "text (longer texts are truncated). OUT.npy is written as OUT.npy.tmp-<pid> and\n"
          "renamed when complete. Progress goes to stderr.\n"
          "\n"
          "halfbyte embed --ray [ADDRESS] -m MODEL -i INPUT -o OUTDIR: the same on a Ray cluster,\n"
          "for Parquet, JSONL or a folder of text files, into resumable Parquet shards (Python's\n"
          "halfbyte.ray: pip install 'halfbyte[ray]'; `halfbyte embed --ray --help`, docs/scale.md).\n");
      return 0;
    } else {
      r.unknown(a);
    }
  }
  if (path.empty()) throw_invalid("-m MODEL is required (see halfbyte embed --help)");
  if (text_path.empty()) throw_invalid("-f TEXTS is required (see halfbyte embed --help)");
  if (out_path.empty()) throw_invalid("-o OUT.npy is required (see halfbyte embed --help)");
  const std::vector<std::string> texts = read_lines(text_path);
  const auto enc = model::Encoder::load(path, o);
  const std::vector<float> e = enc->embed(texts, normalize, batch_size, [](int64_t done, int64_t total) {
    std::fprintf(stderr, "\rembed: %lld/%lld texts", (long long)done, (long long)total);
    std::fflush(stderr);
    return true;
  });
  if (!texts.empty()) std::fprintf(stderr, "\n");
  write_npy(out_path, e, int64_t(texts.size()), enc->dim());
  const bool normalized = normalize < 0 ? enc->config().normalize : normalize > 0;
  std::printf("wrote %s: float32 [%zu, %lld]%s\n", out_path.c_str(), texts.size(), (long long)enc->dim(),
              normalized ? ", L2-normalized" : "");
  return 0;
}

int cmd_classify(const Args& args) {
  std::string path, text_path;
  model::EncoderOptions o;
  model::ScoreFunction fn = model::ScoreFunction::Auto;
  int batch_size = 64;
  long top_k = 1;
  bool json = false, options = true;
  std::vector<std::string> texts;
  ArgReader r(args, "classify");
  while (!r.done()) {
    const std::string& a = r.next();
    if (!options || a.empty() || a[0] != '-' || a == "-") texts.push_back(a);
    else if (a == "--") options = false;
    else if (a == "-m" || a == "--model") path = r.value(a);
    else if (a == "-f" || a == "--file") text_path = r.value(a);
    else if (a == "-k" || a == "--top-k") top_k = r.integer(a, 1, 1L << 30);
    else if (a == "--function") fn = parse_function(r.value(a));
    else if (a == "--json") json = true;
    else if (a == "--dtype") o.dtype = r.value(a);
    else if (a == "--batch-size") batch_size = int(r.integer(a, 1, 1 << 20));
    else if (a == "--max-length") o.max_length = r.integer(a, 2, 1 << 20);
    else if (a == "-t" || a == "--threads") o.n_threads = int(r.integer(a, 1, 1024));
    else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: halfbyte classify -m MODEL [--top-k K] [--function softmax|sigmoid|none] [--json]\n"
          "                         [--dtype q8_0] [--batch-size N] [--max-length N] [-t THREADS]\n"
          "                         (TEXT ... | -f FILE)\n"
          "Labels and scores of each text with a BERT or DistilBERT *ForSequenceClassification\n"
          "folder (sentiment, topics, ...), as transformers' text-classification pipeline: one\n"
          "output line per text, in order: the K best labels (default 1) and their scores,\n"
          "tab-separated (LABEL<TAB>SCORE[<TAB>LABEL<TAB>SCORE...]); with --json each line is a\n"
          "JSON list [{\"label\": ..., \"score\": ...}, ...], best first. Scores: softmax for\n"
          "single-label heads, sigmoid for multi-label ones, the raw logit for regression and\n"
          "one-label heads, unless --function says otherwise. -f FILE: one text per line (an\n"
          "empty line is an empty text). Texts starting with '-' go after `--`.\n");
      return 0;
    } else {
      r.unknown(a);
    }
  }
  if (path.empty()) throw_invalid("-m MODEL is required (see halfbyte classify --help)");
  if (!text_path.empty() && !texts.empty())
    throw_invalid("give the texts as arguments or in -f FILE, not both (see halfbyte classify --help)");
  if (!text_path.empty()) texts = read_lines(text_path);
  else if (texts.empty()) throw_invalid("no texts: give them as arguments or in -f FILE (see halfbyte classify --help)");
  const auto enc = model::Encoder::load(path, o);
  const std::vector<float> p = enc->classify(texts, fn, batch_size);
  const std::vector<std::string>& labels = enc->labels();
  const size_t L = labels.size(), k = std::min(size_t(top_k), L);
  std::vector<size_t> order(L);
  for (size_t i = 0; i < texts.size(); ++i) {
    const float* row = p.data() + i * L;
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return row[a] > row[b]; });
    std::string line = json ? "[" : "";
    for (size_t j = 0; j < k; ++j) {
      const float s = row[order[j]];
      char num[32];
      if (json) {
        if (std::isfinite(s)) std::snprintf(num, sizeof(num), "%.9g", double(s));
        else std::snprintf(num, sizeof(num), "null");
        line += (j ? ", {\"label\": " : "{\"label\": ") + json_string(labels[order[j]]) + ", \"score\": " + num + "}";
      } else {
        std::snprintf(num, sizeof(num), "%.6f", double(s));
        line += (j ? "\t" : "") + labels[order[j]] + "\t" + num;
      }
    }
    if (json) line += "]";
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

}  // namespace halfbyte::cli
