// SentencePiece BPE as llama.cpp runs it for "llama" vocabularies: start from one
// symbol per character, repeatedly merge the adjacent pair whose concatenation is
// the vocabulary token with the highest score (ties: the leftmost pair), and
// emit <0xNN> byte tokens for characters that never formed a token.
#include <cstdint>
#include <queue>
#include <string_view>
#include <vector>

#include "model/tokenizer_impl.hpp"
#include "model/unicode.hpp"

namespace halfbyte::model {

namespace {

struct Symbol {
  size_t off;  // byte range of the symbol in the text
  size_t n;    // 0 once merged into its left neighbour
  int prev, next;
};

struct Candidate {
  float score;
  int left, right;
  size_t size;  // bytes of left + right when the candidate was made
};

// Max-heap order: higher score first, then smaller left index.
struct Lower {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

void spm_tokenize(const Tokenizer::Vocab& v, std::string_view text, std::vector<int32_t>& out) {
  std::vector<Symbol> sym;
  sym.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t len = unicode::decode(text.data(), text.size(), i).len;
    const int idx = int(sym.size());
    sym.push_back({i, len, idx - 1, idx + 1});
    i += len;
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  std::priority_queue<Candidate, std::vector<Candidate>, Lower> queue;
  auto consider = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const std::string_view pair = text.substr(sym[size_t(l)].off, sym[size_t(l)].n + sym[size_t(r)].n);
    const int32_t id = v.find(pair);
    if (id == kNoToken) return;
    queue.push({v.score[size_t(id)], l, r, pair.size()});
  };
  for (int i = 1; i < int(sym.size()); ++i) consider(i - 1, i);

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& l = sym[size_t(c.left)];
    Symbol& r = sym[size_t(c.right)];
    // Stale: one side was merged away or grew since the candidate was made.
    if (l.n == 0 || r.n == 0 || l.n + r.n != c.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) sym[size_t(r.next)].prev = c.left;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }

  for (int i = 0; i != -1; i = sym[size_t(i)].next) {
    const std::string_view piece = text.substr(sym[size_t(i)].off, sym[size_t(i)].n);
    const int32_t id = v.find(piece);
    if (id != kNoToken) {
      out.push_back(id);
      continue;
    }
    // Only single characters can lack a token (every merge makes one): bytes.
    for (unsigned char b : piece) {
      const int32_t bt = v.byte_token[b];
      if (bt != kNoToken) out.push_back(bt);
      else if (v.unk != kNoToken) out.push_back(v.unk);
    }
  }
}

}  // namespace halfbyte::model
