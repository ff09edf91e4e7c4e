// Counters and latency histograms of `halfbyte serve`, rendered in Prometheus'
// text exposition format for GET /metrics. Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace halfbyte::server {

class Metrics {
 public:
  // A finished HTTP request: its route ("/v1/chat/completions", ...) and status.
  void request(const std::string& route, int status, double seconds);
  void tokens(int64_t prompt, int64_t completion);
  void time_to_first_token(double seconds);
  // Gauges read at render time (queued and running generation requests, slots).
  std::string render(int64_t queued, int64_t running, int64_t slots, int64_t steps, int64_t batch_tokens,
                     int64_t cached_tokens) const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                      0.5,   1.0,  2.5,   5.0,  10.0, 30.0};
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> le{};
    uint64_t count = 0;
    double sum = 0.0;
    void add(double x);
    void render(std::string& out, const std::string& name, const std::string& labels) const;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  Histogram ttft_;
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0;
};

}  // namespace halfbyte::server
