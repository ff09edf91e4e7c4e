// Byte-level BPE (GPT-2 family): split the text into words with the
// pre-tokenizer, start each word from one symbol per byte (the byte's stand-in
// character token), and apply the merges lowest rank first (ties: leftmost
// pair) until no adjacent pair has a merge. Merges are looked up by the pair of
// token ids in a hash map, so a word of n bytes costs O(n log n).
#include <cstdint>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer_impl.hpp"
#include "model/unicode.hpp"

namespace halfbyte::model {

namespace {

struct Symbol {
  int32_t id;  // token id, kNoToken for a byte whose stand-in is not in the vocabulary
  int prev, next;
  bool alive;
};

struct Candidate {
  int32_t rank;
  int left, right;
  int32_t left_id, right_id, merged_id;
};

// Min-heap order: lower rank first, then smaller left index.
struct Later {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

class WordMerger {
 public:
  explicit WordMerger(const Tokenizer::Vocab& v) : v_(v) {}

  void run(std::string_view word, std::vector<int32_t>& out) {
    if (v_.ignore_merges) {
      encoded_.clear();
      for (unsigned char b : word) encoded_ += unicode::byte_to_utf8(b);
      const int32_t id = v_.find(encoded_);
      if (id != kNoToken) {
        out.push_back(id);
        return;
      }
    }
    sym_.clear();
    for (unsigned char b : word) {
      const int idx = int(sym_.size());
      sym_.push_back({v_.byte_token[b], idx - 1, idx + 1, true});
    }
    if (sym_.empty()) return;
    sym_.back().next = -1;
    queue_ = {};
    for (int i = 1; i < int(sym_.size()); ++i) consider(i - 1, i);

    while (!queue_.empty()) {
      const Candidate c = queue_.top();
      queue_.pop();
      Symbol& l = sym_[size_t(c.left)];
      Symbol& r = sym_[size_t(c.right)];
      // Stale: a side was merged away or changed since the candidate was made.
      if (!l.alive || !r.alive || l.next != c.right || l.id != c.left_id || r.id != c.right_id) continue;
      l.id = c.merged_id;
      r.alive = false;
      l.next = r.next;
      if (r.next >= 0) sym_[size_t(r.next)].prev = c.left;
      consider(l.prev, c.left);
      consider(c.left, l.next);
    }

    for (int i = 0; i != -1; i = sym_[size_t(i)].next) {
      const int32_t id = sym_[size_t(i)].id;
      if (id != kNoToken) out.push_back(id);
      else if (v_.unk != kNoToken) out.push_back(v_.unk);
    }
  }

 private:
  void consider(int l, int r) {
    if (l < 0 || r < 0) return;
    const int32_t a = sym_[size_t(l)].id, b = sym_[size_t(r)].id;
    if (a == kNoToken || b == kNoToken) return;
    const auto it = v_.merges.find(pair_key(a, b));
    if (it == v_.merges.end()) return;
    queue_.push({it->second.rank, l, r, a, b, it->second.id});
  }

  const Tokenizer::Vocab& v_;
  std::string encoded_;
  std::vector<Symbol> sym_;
  std::priority_queue<Candidate, std::vector<Candidate>, Later> queue_;
};

}  // namespace

void bpe_tokenize(const Tokenizer::Vocab& v, std::string_view text, std::vector<int32_t>& out) {
  WordMerger merger(v);
  for (const auto& [b, e] : pre_tokenize_ranges(v.pre, text)) merger.run(text.substr(b, e - b), out);
}

}  // namespace halfbyte::model
