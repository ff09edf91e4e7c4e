// Turns generated tokens' bytes into text that is safe to hand out as it comes:
// whole UTF-8 characters only, never any part of a stop string, and nothing after
// the first stop string. Used by Model::generate and the continuous batcher.
#pragma once

#include <string>
#include <vector>

namespace halfbyte::model {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop = {});

  // Adds the bytes of one token; returns what can be emitted now (may be empty).
  // After a stop string appears, stopped() is true: the returned text ends just
  // before it and later pushes return nothing.
  std::string push(const std::string& bytes);
  // The bytes held back (an incomplete character or a possible stop-string
  // prefix) once generation ends; empty after a stop.
  std::string finish();

  bool stopped() const noexcept { return stopped_; }
  const std::string& text() const noexcept { return text_; }  // everything emitted

 private:
  std::vector<std::string> stop_;
  size_t max_stop_ = 0;
  std::string text_, pending_;
  bool stopped_ = false;
};

// Bytes of `s` that form complete UTF-8 characters (the rest waits for more).
size_t complete_utf8_prefix(const std::string& s);

}  // namespace halfbyte::model
