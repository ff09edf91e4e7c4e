#include "server/metrics.hpp"

#include <cstdio>

namespace halfbyte::server {
namespace {

std::string num(double x) {
  char b[64];
  std::snprintf(b, sizeof b, "%.9g", x);
  return b;
}

}  // namespace

void Metrics::Histogram::add(double x) {
  for (size_t i = 0; i < kBuckets.size(); ++i)
    if (x <= kBuckets[i]) ++le[i];
  ++count;
  sum += x;
}

void Metrics::Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < kBuckets.size(); ++i)
    out += name + "_bucket{" + labels + sep + "le=\"" + num(kBuckets[i]) + "\"} " + std::to_string(le[i]) + "\n";
  out += name + "_bucket{" + labels + sep + "le=\"+Inf\"} " + std::to_string(count) + "\n";
  const std::string l = labels.empty() ? "" : "{" + labels + "}";
  out += name + "_sum" + l + " " + num(sum) + "\n";
  out += name + "_count" + l + " " + std::to_string(count) + "\n";
}

void Metrics::request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lk(mu_);
  ++requests_[{route, status}];
  latency_[route].add(seconds);
}

void Metrics::tokens(int64_t prompt, int64_t completion) {
  std::lock_guard<std::mutex> lk(mu_);
  prompt_tokens_ += prompt;
  completion_tokens_ += completion;
}

void Metrics::time_to_first_token(double seconds) {
  std::lock_guard<std::mutex> lk(mu_);
  ttft_.add(seconds);
}

std::string Metrics::render(int64_t queued, int64_t running, int64_t slots, int64_t steps, int64_t batch_tokens,
                            int64_t cached_tokens) const {
  std::lock_guard<std::mutex> lk(mu_);
  std::string o;
  o += "# HELP halfbyte_requests_total HTTP requests answered, by route and status.\n";
  o += "# TYPE halfbyte_requests_total counter\n";
  for (const auto& [k, n] : requests_)
    o += "halfbyte_requests_total{route=\"" + k.first + "\",status=\"" + std::to_string(k.second) + "\"} " +
         std::to_string(n) + "\n";
  o += "# HELP halfbyte_prompt_tokens_total Prompt tokens processed.\n# TYPE halfbyte_prompt_tokens_total counter\n";
  o += "halfbyte_prompt_tokens_total " + std::to_string(prompt_tokens_) + "\n";
  o += "# HELP halfbyte_cached_prompt_tokens_total Prompt tokens copied from another sequence's cache.\n"
       "# TYPE halfbyte_cached_prompt_tokens_total counter\n";
  o += "halfbyte_cached_prompt_tokens_total " + std::to_string(cached_tokens) + "\n";
  o += "# HELP halfbyte_completion_tokens_total Tokens generated.\n# TYPE halfbyte_completion_tokens_total counter\n";
  o += "halfbyte_completion_tokens_total " + std::to_string(completion_tokens_) + "\n";
  o += "# HELP halfbyte_queue_requests Generation requests waiting for a slot.\n# TYPE halfbyte_queue_requests gauge\n";
  o += "halfbyte_queue_requests " + std::to_string(queued) + "\n";
  o += "# HELP halfbyte_running_requests Generation requests in a slot.\n# TYPE halfbyte_running_requests gauge\n";
  o += "halfbyte_running_requests " + std::to_string(running) + "\n";
  o += "# HELP halfbyte_slots Sequences decoded together at most (--parallel).\n# TYPE halfbyte_slots gauge\n";
  o += "halfbyte_slots " + std::to_string(slots) + "\n";
  o += "# HELP halfbyte_batch_steps_total Batched forward passes.\n# TYPE halfbyte_batch_steps_total counter\n";
  o += "halfbyte_batch_steps_total " + std::to_string(steps) + "\n";
  o += "# HELP halfbyte_batch_tokens_total Tokens over all batched forward passes.\n"
       "# TYPE halfbyte_batch_tokens_total counter\n";
  o += "halfbyte_batch_tokens_total " + std::to_string(batch_tokens) + "\n";
  o += "# HELP halfbyte_request_duration_seconds Time to answer a request, by route.\n"
       "# TYPE halfbyte_request_duration_seconds histogram\n";
  for (const auto& [route, h] : latency_) h.render(o, "halfbyte_request_duration_seconds", "route=\"" + route + "\"");
  o += "# HELP halfbyte_time_to_first_token_seconds Request received to its first generated token.\n"
       "# TYPE halfbyte_time_to_first_token_seconds histogram\n";
  ttft_.render(o, "halfbyte_time_to_first_token_seconds", "");
  return o;
}

}  // namespace halfbyte::server
