// Multi-sequence batches (Model::eval_batch) and the continuous batcher against the
// single-sequence path: a token's logits must not depend on what else is in its
// batch, so greedy text alone and beside other requests is identical.
// Uses the SmolLM2-135M-Instruct GGUF that .ci/setup fetches into models/.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "halfbyte/core/error.hpp"
#include "halfbyte/model/batcher.hpp"
#include "halfbyte/model/model.hpp"
#include "halfbyte/model/tokenizer.hpp"

using namespace halfbyte;
using namespace halfbyte::model;

namespace {

const std::string kModel = std::string(HALFBYTE_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";

bool have_model() {
#ifdef HALFBYTE_NO_MODEL_TESTS
  WARN("skipped: " << HALFBYTE_NO_MODEL_TESTS);
  return false;
#endif
  if (std::ifstream(kModel).good()) return true;
  WARN("skipped: " << kModel << " is missing (examples/fetch_smollm2.sh fetches it)");
  return false;
}

std::unique_ptr<Model> load(int n_seq, int64_t n_ctx = 256) {
  LoadOptions o;
  o.n_seq = n_seq;
  o.n_ctx = n_ctx;
  o.n_threads = 2;
  return Model::load(kModel, o);
}

struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::map<int, std::string> text;
  std::map<int, BatchResult> done;
  BatchRequest request(Model& m, int key, const std::string& prompt, int max_tokens) {
    BatchRequest r;
    r.prompt = m.tokenize(prompt);
    r.params.max_tokens = max_tokens;
    r.on_piece = [this, key](std::string_view s) {
      std::lock_guard<std::mutex> lk(mu);
      text[key] += std::string(s);
      cv.notify_all();
      return true;
    };
    r.on_done = [this, key](const BatchResult& res) {
      std::lock_guard<std::mutex> lk(mu);
      done[key] = res;
      cv.notify_all();
    };
    return r;
  }
  void wait(size_t n) {
    std::unique_lock<std::mutex> lk(mu);
    REQUIRE(cv.wait_for(lk, std::chrono::seconds(120), [&] { return done.size() >= n; }));
  }
};

const std::vector<std::string> kPrompts = {
    "The capital of France is", "Once upon a time, in a small village,", "def fibonacci(n):",
    "List three colours:", "The quick brown fox", "Water boils at"};

}  // namespace

TEST_CASE("eval_batch: each sequence's logits equal its own single-sequence eval", "[model][batch]") {
  if (!have_model()) return;
  auto solo = load(1);
  auto multi = load(3);
  const int64_t V = solo->config().n_vocab;
  std::vector<std::vector<int32_t>> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(solo->tokenize(kPrompts[size_t(i)]));
  // Reference: each prompt alone through eval(), all positions' logits.
  std::vector<std::vector<float>> ref;
  for (const auto& p : ids) {
    solo->reset();
    ref.push_back(solo->eval(p, true));
  }
  // All three interleaved token by token in one batch, then checked row by row.
  std::vector<BatchToken> batch;
  size_t longest = 0;
  for (const auto& p : ids) longest = std::max(longest, p.size());
  for (size_t t = 0; t < longest; ++t)
    for (int s = 0; s < 3; ++s)
      if (t < ids[size_t(s)].size()) batch.push_back({ids[size_t(s)][t], s, int64_t(t), true});
  std::vector<float> logits;
  multi->eval_batch(batch, logits);
  REQUIRE(logits.size() == batch.size() * size_t(V));
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& b = batch[i];
    const float* got = logits.data() + i * size_t(V);
    const float* want = ref[size_t(b.seq)].data() + size_t(b.pos) * size_t(V);
    float worst = 0.0f;
    for (int64_t v = 0; v < V; ++v) worst = std::max(worst, std::abs(got[v] - want[v]));
    INFO("sequence " << b.seq << " position " << b.pos);
    CHECK(worst == 0.0f);  // rows are computed as they would be alone: bit-identical
  }
}

TEST_CASE("eval_batch: bad slots, positions and ids are errors", "[model][batch]") {
  if (!have_model()) return;
  auto m = load(2, 64);
  std::vector<float> logits;
  CHECK_THROWS_WITH(m->eval_batch({{1, 2, 0, true}}, logits), Catch::Contains("slot 2"));
  CHECK_THROWS_WITH(m->eval_batch({{1, -1, 0, true}}, logits), Catch::Contains("slot -1"));
  CHECK_THROWS_WITH(m->eval_batch({{1, 0, 64, true}}, logits), Catch::Contains("position 64"));
  CHECK_THROWS_WITH(m->eval_batch({{int32_t(m->config().n_vocab), 0, 0, true}}, logits),
                    Catch::Contains("vocabulary"));
  m->eval_batch({}, logits);
  CHECK(logits.empty());
}

TEST_CASE("Batcher: greedy text beside others equals Model::generate alone", "[model][batch]") {
  if (!have_model()) return;
  auto solo = load(1);
  std::vector<std::string> want;
  SamplingParams sp;
  sp.max_tokens = 24;
  for (const auto& p : kPrompts) want.push_back(solo->generate(p, sp));

  auto m = load(4);
  BatcherOptions bo;
  bo.prefill_chunk = 3;  // prompts fed in pieces beside running decodes
  Batcher b(*m, bo);
  Collector c;
  for (size_t i = 0; i < kPrompts.size(); ++i) b.submit(c.request(*m, int(i), kPrompts[i], 24));  // 6 > 4 slots
  c.wait(kPrompts.size());
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    INFO("prompt: " << kPrompts[i]);
    CHECK(c.text[int(i)] == want[i]);
    CHECK(c.done[int(i)].prompt_tokens == int64_t(m->tokenize(kPrompts[i]).size()));
    CHECK((c.done[int(i)].finish_reason == "length" || c.done[int(i)].finish_reason == "stop"));
    CHECK(c.done[int(i)].first_token_seconds <= c.done[int(i)].total_seconds);
  }
  const BatcherStats st = b.stats();
  CHECK(st.active == 0);
  CHECK(st.queued == 0);
  // Batching happened: fewer steps than tokens generated.
  CHECK(st.steps < st.generated_tokens);
  // Finished requests gave their KV-cache pages back.
  const MemoryReport mem = m->memory();
  CHECK(mem.kv_cache_resident < mem.kv_cache / 100);
}

TEST_CASE("Batcher: cancel, max_tokens 0, stop strings and bad requests", "[model][batch]") {
  if (!have_model()) return;
  auto m = load(2);
  Batcher b(*m);
  Collector c;
  // A long request cancelled while it runs ends "cancelled" and frees its slot.
  const uint64_t id = b.submit(c.request(*m, 0, "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", 200));
  {
    std::unique_lock<std::mutex> lk(c.mu);
    REQUIRE(c.cv.wait_for(lk, std::chrono::seconds(60), [&] { return c.text[0].size() >= 6 || c.done.count(0); }));
    REQUIRE(c.done.count(0) == 0);  // still running after a few tokens
  }
  b.cancel(id);
  c.wait(1);
  CHECK(c.done[0].finish_reason == "cancelled");
  CHECK(c.done[0].completion_tokens < 200);

  b.submit(c.request(*m, 1, "Hello", 0));
  c.wait(2);
  CHECK(c.done[1].finish_reason == "length");
  CHECK(c.done[1].completion_tokens == 0);
  CHECK(c.text[1].empty());

  // Stop string: the text ends before it, reason "stop".
  SamplingParams sp;
  sp.max_tokens = 24;
  const std::string full = m->generate(kPrompts[1], sp);
  REQUIRE(full.size() > 8);
  const std::string stop = full.substr(full.size() / 2, 3);
  const std::string want = full.substr(0, full.find(stop));
  auto r = c.request(*m, 2, kPrompts[1], 24);
  r.params.stop = {stop};
  b.submit(std::move(r));
  c.wait(3);
  CHECK(c.text[2] == want);
  CHECK(c.done[2].finish_reason == "stop");

  BatchRequest bad;
  CHECK_THROWS_WITH(b.submit(bad), Catch::Contains("no tokens"));
  bad.prompt = std::vector<int32_t>(256, 1);
  CHECK_THROWS_WITH(b.submit(bad), Catch::Contains("context"));
  bad.prompt = {1, -3};
  CHECK_THROWS_WITH(b.submit(bad), Catch::Contains("vocabulary"));
  bad.prompt = {1};
  bad.params.max_tokens = -5;
  CHECK_THROWS_WITH(b.submit(bad), Catch::Contains("max_tokens"));
  bad.params.max_tokens = 4;
  bad.params.top_p = 0.0f;  // refused at submit, not on the worker thread
  CHECK_THROWS_WITH(b.submit(bad), Catch::Contains("top_p"));
}

TEST_CASE("Batcher: the loop on the caller's thread (own_thread = false) and call()", "[model][batch]") {
  if (!have_model()) return;
  auto m = load(2);
  SamplingParams sp;
  sp.max_tokens = 12;
  const std::string want = m->generate(kPrompts[0], sp);
  BatcherOptions bo;
  bo.own_thread = false;
  Batcher b(*m, bo);
  Collector c;
  const std::thread::id loop_thread = std::this_thread::get_id();
  std::thread client([&] {
    b.submit(c.request(*m, 0, kPrompts[0], 12));
    c.wait(1);
    // call(): runs on the loop's thread, returns its result, rethrows its exception.
    std::thread::id ran_on;
    b.call([&] { ran_on = std::this_thread::get_id(); });
    CHECK(ran_on == loop_thread);
    CHECK_THROWS_WITH(b.call([] { throw Error(ErrorKind::Runtime, "job failed"); }), Catch::Contains("job failed"));
    b.shutdown();
  });
  b.run();  // returns after shutdown()
  client.join();
  CHECK(c.text[0] == want);
  CHECK_THROWS_WITH(b.call([] {}), Catch::Contains("shutting down"));
}

TEST_CASE("Batcher: prompts that share their start copy it from another slot, same text", "[model][batch]") {
  if (!have_model()) return;
  auto solo = load(1);
  const std::vector<std::string> questions = {"What is the capital of France?", "Name a red fruit.",
                                              "Write a haiku about snow.", "How many legs has a spider?"};
  SamplingParams sp;
  sp.max_tokens = 16;
  std::vector<std::string> want;
  for (const auto& q : questions) want.push_back(solo->generate(q, sp, {}, nullptr, /*chat=*/true));

  auto m = load(4);
  BatcherOptions bo;
  bo.prefill_chunk = 7;  // the shared system message arrives in pieces, copied while it grows
  Batcher b(*m, bo);
  Collector c;
  for (size_t i = 0; i < questions.size(); ++i) {
    BatchRequest r;
    r.prompt = m->tokenizer().encode(m->chat_prompt({{"user", questions[i]}}), true, true);
    r.params = sp;
    auto base = c.request(*m, int(i), "x", 16);
    r.on_piece = base.on_piece;
    r.on_done = base.on_done;
    b.submit(std::move(r));
  }
  c.wait(questions.size());
  int64_t cached = 0;
  for (size_t i = 0; i < questions.size(); ++i) {
    INFO(questions[i]);
    CHECK(c.text[int(i)] == want[i]);
    cached += c.done[int(i)].cached_tokens;
  }
  // Three of the four copied the template's system message (~25 tokens) at least.
  CHECK(cached >= 3 * 20);
  CHECK(b.stats().cached_tokens == cached);
}

TEST_CASE("copy_slot_prefix: the copied cache gives the logits of computing it", "[model][batch]") {
  if (!have_model()) return;
  auto m = load(2);
  // Over 32 tokens: copies that end inside the first key tile, at its end and in the second.
  const std::vector<int32_t> ids = m->tokenize(
      "The quick brown fox jumps over the lazy dog because it was bored. Then the dog woke up, "
      "stretched, and chased the fox all the way back to the river where they both sat down.");
  REQUIRE(ids.size() > 34);
  std::vector<BatchToken> a;
  for (size_t t = 0; t < ids.size(); ++t) a.push_back({ids[t], 0, int64_t(t), t + 1 == ids.size()});
  std::vector<float> want, got;
  m->eval_batch(a, want);
  for (const int64_t n : {int64_t(5), int64_t(32), int64_t(33), int64_t(ids.size() - 1)}) {
    m->release_slot(1);
    m->copy_slot_prefix(0, 1, n);
    std::vector<BatchToken> rest;
    for (size_t t = size_t(n); t < ids.size(); ++t) rest.push_back({ids[t], 1, int64_t(t), t + 1 == ids.size()});
    m->eval_batch(rest, got);
    CHECK(got == want);
  }
  CHECK_THROWS_WITH(m->copy_slot_prefix(0, 0, 3), Catch::Contains("two different slots"));
  CHECK_THROWS_WITH(m->copy_slot_prefix(0, 2, 3), Catch::Contains("slots 0 -> 2"));
}
