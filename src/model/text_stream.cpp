#include "model/text_stream.hpp"

#include <algorithm>

namespace halfbyte::model {

size_t complete_utf8_prefix(const std::string& s) {
  size_t i = s.size();
  // Look back at most 3 bytes for the start of an incomplete sequence.
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const unsigned char c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    const size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    if (need > back) i = s.size() - back;
    break;
  }
  return i;
}

TextStream::TextStream(std::vector<std::string> stop) : stop_(std::move(stop)) {
  for (const auto& s : stop_) max_stop_ = std::max(max_stop_, s.size());
}

std::string TextStream::push(const std::string& bytes) {
  if (stopped_) return {};
  pending_ += bytes;
  // Stop strings: cut at the first one; hold back a tail that may be the start of
  // one. Only the last max_stop bytes of emitted text can take part in a match.
  size_t hold = 0;
  if (max_stop_ > 0) {
    const size_t keep = std::min(text_.size(), max_stop_);
    const std::string window = text_.substr(text_.size() - keep) + pending_;
    for (const auto& s : stop_) {
      if (s.empty()) continue;
      const size_t at = window.find(s);
      if (at != std::string::npos) {
        pending_.resize(at > keep ? at - keep : 0);
        stopped_ = true;
        break;
      }
      for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k)
        if (window.compare(window.size() - k, k, s, 0, k) == 0) {
          hold = k;
          break;
        }
    }
  }
  const size_t ready = stopped_ ? pending_.size() : complete_utf8_prefix(pending_.substr(0, pending_.size() - hold));
  std::string out = pending_.substr(0, ready);
  pending_.erase(0, ready);
  if (stopped_) pending_.clear();
  text_ += out;
  return out;
}

std::string TextStream::finish() {
  std::string out;
  out.swap(pending_);
  text_ += out;
  return out;
}

}  // namespace halfbyte::model
