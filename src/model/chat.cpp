// Chat templates. A GGUF carries its template as Jinja source; rather than run
// Jinja, halfbyte recognises the template families it knows by their markers and
// renders them itself. Known: ChatML (SmolLM2, Qwen2), including a default system
// message that the template inserts when the conversation has none.
#include "halfbyte/model/model.hpp"

#include "halfbyte/core/error.hpp"

namespace halfbyte::model {
namespace {

// The system message a ChatML template adds when messages[0] is not one: the
// literal between "<|im_start|>system\n" and "<|im_end|>" in the template, if the
// template tests for a missing system role.
std::string default_system(const std::string& tmpl) {
  if (tmpl.find("!= 'system'") == std::string::npos && tmpl.find("!= \"system\"") == std::string::npos) return {};
  for (const char* open : {"<|im_start|>system\n", "<|im_start|>system\\n"}) {
    const size_t a = tmpl.find(open);
    if (a == std::string::npos) continue;
    const size_t from = a + std::char_traits<char>::length(open);
    const size_t b = tmpl.find("<|im_end|>", from);
    if (b == std::string::npos) return {};
    std::string s = tmpl.substr(from, b - from);
    if (s.find("{{") != std::string::npos || s.find("{%") != std::string::npos) return {};  // not a literal
    return s;
  }
  return {};
}

}  // namespace

std::string render_chat(const std::string& tmpl, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt) {
  if (tmpl.find("<|im_start|>") == std::string::npos)
    throw_error(ErrorKind::Unsupported,
                tmpl.empty() ? "chat: this model has no chat template"
                             : "chat: this model's chat template is not supported (ChatML only for now)");
  std::string out;
  if (!messages.empty() && messages.front().role != "system") {
    const std::string sys = default_system(tmpl);
    if (!sys.empty()) out += "<|im_start|>system\n" + sys + "<|im_end|>\n";
  }
  for (const ChatMessage& m : messages) {
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
      throw_invalid("chat: unknown role '", m.role, "' (system, user, assistant)");
    out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace halfbyte::model
