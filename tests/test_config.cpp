// Configuration: defaults, presets, exact JSON round trip, --set overrides, and every bad-input case
// (missing file, malformed JSON with line:column, unknown key, wrong type, out-of-range value), whose
// one-line message must name the file (or the --set) and the key path. Also the `gfwa config` binary.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "train/config_io.h"
#include "train/config_schema.h"

using namespace gfwa;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("gfwa_test_config_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(counter++) + "_" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  fs::path dir_;
};

// The ConfigError message thrown by f; a test failure when f does not throw one.
template <class F>
std::string config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    return msg;
  }
  ADD_FAILURE() << "expected a ConfigError";
  return "";
}

void expect_contains(const std::string& msg, const std::string& part) {
  EXPECT_NE(msg.find(part), std::string::npos) << "message: " << msg << "\nexpected to contain: " << part;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Exact text of every field (floats as bit patterns), to compare configurations field by field.
struct Fingerprint {
  std::vector<std::string> fields;
  template <class T, class R>
  void operator()(const char* path, const T& value, const R&) {
    fields.push_back(std::string(path) + "=" + text(value));
  }
  static std::string text(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    return "bits:" + std::to_string(bits);
  }
  template <class T>
  static std::string text(const T& v) { return config_schema::show(v); }
};

std::vector<std::string> fingerprint(const RunConfig& c) {
  Fingerprint f;
  config_schema::visit_fields(c, f);
  return f.fields;
}

// Fills every field with a random value its own rule accepts.
struct Randomizer {
  std::mt19937_64& rng;

  template <class R>
  void operator()(const char*, int& x, const R& rule) {
    do x = int(rng() % 4000) - 20; while (!rule(x).empty());
  }
  template <class R>
  void operator()(const char*, int64_t& x, const R& rule) {
    do x = int64_t(rng() % (int64_t(1) << 40)) - 20; while (!rule(x).empty());
  }
  template <class R>
  void operator()(const char*, uint64_t& x, const R&) { x = rng(); }
  template <class R>
  void operator()(const char*, float& x, const R& rule) {
    const float specials[] = {FLT_MAX, -FLT_MAX, FLT_MIN, FLT_TRUE_MIN, 0.1f, std::nextafter(0.1f, 1.0f),
                              1.0f / 3.0f, 0.99999994f, 6e-4f, -0.0f};
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    do {
      if (rng() % 3 == 0)
        x = specials[rng() % (sizeof specials / sizeof specials[0])];
      else
        x = std::ldexp(u(rng), int(rng() % 40) - 30);
    } while (!rule(x).empty());
  }
  template <class R>
  void operator()(const char*, bool& x, const R&) { x = rng() & 1; }
  template <class R>
  void operator()(const char*, std::string& x, const R& rule) {
    const char* pool[] = {"cosine", "linear", "constant", "wsd",   "auto", "cpu",  "cuda",
                          "trace",  "debug",  "info",     "warn",  "error", "tcp", "file",
                          "adamw",  "muon",   "none",  "selective", "full", "a,b=c", "tab\there \"quoted\"\nnewline",
                          "héllo",  "data/x_*.bin"};
    do x = pool[rng() % (sizeof pool / sizeof pool[0])]; while (!rule(x).empty());
  }
  template <class R>
  void operator()(const char*, AttnMode& x, const R& rule) {
    do x = AttnMode(rng() % 4); while (!rule(x).empty());
  }
  template <class R>
  void operator()(const char*, AttentionPattern&, const R&) {}  // depends on n_layers: random_config
  template <class R>
  void operator()(const char*, std::map<std::string, std::string>& x, const R&) {
    x.clear();
    if (rng() % 2) x = {{"piqa", "valid \"q\".jsonl"}, {"hellaswag", "héllo/val.jsonl"}};
  }
};

RunConfig random_config(uint64_t seed) {
  std::mt19937_64 rng(seed);
  RunConfig c;
  Randomizer r{rng};
  config_schema::visit_fields(c, r);
  // rules between keys
  c.model.n_heads = 1 + int(rng() % 16);
  c.model.d_model = c.model.n_heads * 2 * (1 + int(rng() % 40));
  for (c.model.n_kv_heads = int(rng() % 17); c.model.n_kv_heads > 0 && c.model.n_heads % c.model.n_kv_heads != 0;)
    --c.model.n_kv_heads;  // 0 (= n_heads) or a divisor of n_heads
  if (c.model.head_dim() != 64 && c.model.head_dim() != 128 && c.train.backend == "cuda") c.train.backend = "cpu";
  c.train.batch_size = 1 + int(rng() % 64);
  c.train.seq_len = 1 + int(rng() % 4096);
  c.train.tokens_per_step = int64_t(c.train.batch_size) * c.train.seq_len * int64_t(rng() % 5);
  if (c.train.token_budget == 0 && c.train.max_steps == 0) c.train.max_steps = 7;
  if (c.distributed.id_exchange == "file") c.distributed.id_file = "/shared/nccl_id";
  c.model.n_layers = 1 + int(rng() % 24);
  switch (rng() % 3) {  // none, letters tiling the layers, or one entry per layer
    case 1:
      for (int k = 0; k < (c.model.n_layers % 2 ? 1 : 2); ++k) c.model.attention.pattern.letters += "SL"[rng() % 2];
      break;
    case 2:
      for (int l = 0; l < c.model.n_layers; ++l)
        c.model.attention.pattern.layers.push_back({AttnMode(rng() % 4), int(rng() % 3) * int(rng() % 5000)});
      break;
  }
  if (c.model.any_nsa()) {  // NSA: no start from exported weights; the cuda backend's blocks and top_k
    c.model.init_from.clear();
    if (c.train.backend == "cuda") {
      c.model.attention.nsa.block = 64;
      c.model.attention.nsa.top_k = 1 + int(rng() % 64);
    }
  }
  return c;
}

// ---- defaults, presets, round trip --------------------------------------------------------------

TEST_F(ConfigTest, DefaultsWithoutFile) {
  const RunConfig c = load_config("");
  EXPECT_EQ(fingerprint(c), fingerprint(RunConfig{}));
  EXPECT_EQ(c.model.vocab_size, 50304);
  EXPECT_EQ(c.model.attention.mode, AttnMode::gatedfwa);
  EXPECT_EQ(c.model.attention.window, 512);
  EXPECT_EQ(c.optimizer.lr, 6e-4f);
  EXPECT_EQ(c.schedule.type, "cosine");
  EXPECT_EQ(c.train.backend, "auto");
  EXPECT_EQ(c.train.seed, 1337u);
  EXPECT_TRUE(c.data.shuffle);
  // An empty object means defaults too.
  EXPECT_EQ(fingerprint(load_config(write("empty.json", "{}"))), fingerprint(RunConfig{}));
}

TEST_F(ConfigTest, EveryPresetLoads) {
  const fs::path dir = fs::path(GFWA_SOURCE_DIR) / "configs";
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    names.push_back(entry.path().filename().string());
    const RunConfig c = load_config(entry.path().string());
    // Every preset must also run on the GPU path (train.backend auto may resolve to cuda).
    EXPECT_NO_THROW(check_backend_support(c, "cuda", entry.path().string()));
    EXPECT_GE(c.model.vocab_size, 50257) << "the GPT-2 tokenizer has 50257 ids";
  }
  for (const char* want : {"quickstart.json", "gpt124m_full.json", "gpt124m_swa.json", "gpt124m_gatedfwa.json",
                           "gpt124m_gatedfwa_8k.json"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;

  const std::pair<const char*, AttnMode> gpt[] = {{"gpt124m_full.json", AttnMode::full},
                                                  {"gpt124m_swa.json", AttnMode::swa},
                                                  {"gpt124m_gatedfwa.json", AttnMode::gatedfwa}};
  for (const auto& [name, mode] : gpt) {
    const RunConfig c = load_config((dir / name).string());
    EXPECT_EQ(c.model.n_layers, 12);
    EXPECT_EQ(c.model.d_model, 768);
    EXPECT_EQ(c.model.n_heads, 12);
    EXPECT_EQ(c.model.hidden(), 3072);
    EXPECT_EQ(c.model.vocab_size, 50304);
    EXPECT_EQ(c.model.attention.mode, mode);
    EXPECT_EQ(c.model.attention.window, 512);
    EXPECT_EQ(c.train.seq_len, 1024);
  }
  const RunConfig long_ctx = load_config((dir / "gpt124m_gatedfwa_8k.json").string());
  EXPECT_EQ(long_ctx.train.seq_len, 8192);
  EXPECT_EQ(long_ctx.model.attention.window, 1024);
  const RunConfig quick = load_config((dir / "quickstart.json").string());
  EXPECT_LT(quick.model.attention.window, quick.train.seq_len);
  EXPECT_LE(quick.model.n_layers, 4);

  // Issue 17's sizes in every mode: T 2048, W 512, 0.5M tokens per step, SwiGLU width 4 d.
  struct Size {
    const char* name;
    int d, layers, heads;
  };
  for (const Size& s : {Size{"gpt350m", 1024, 24, 16}, Size{"gpt774m", 1280, 36, 20}, Size{"gpt1.3b", 2048, 24, 16}})
    for (const auto& [mode_name, mode] : {std::pair{"full", AttnMode::full}, std::pair{"swa", AttnMode::swa},
                                          std::pair{"gatedfwa", AttnMode::gatedfwa}}) {
      const std::string file = std::string(s.name) + "_" + mode_name + ".json";
      SCOPED_TRACE(file);
      const RunConfig c = load_config((dir / file).string());
      EXPECT_EQ(c.model.d_model, s.d);
      EXPECT_EQ(c.model.n_layers, s.layers);
      EXPECT_EQ(c.model.n_heads, s.heads);
      EXPECT_EQ(c.model.hidden(), 4 * s.d);
      EXPECT_EQ(c.model.attention.mode, mode);
      EXPECT_EQ(c.model.attention.window, 512);
      EXPECT_EQ(c.train.seq_len, 2048);
      EXPECT_EQ(c.train.tokens_per_step, 524288);
    }
  // The authors' run (their nanochat fork): depth 20, T 2048, W 512, gates and K/V token shift.
  const RunConfig d20 = load_config((dir / "nanochat_d20_gatedfwa.json").string());
  EXPECT_EQ(d20.model.n_layers, 20);
  EXPECT_EQ(d20.model.d_model, 1280);
  EXPECT_EQ(d20.model.head_dim(), 128);
  EXPECT_EQ(d20.model.attention.mode, AttnMode::gatedfwa);
  EXPECT_EQ(d20.model.attention.window, 512);
  EXPECT_TRUE(d20.model.attention.token_shift);
  EXPECT_EQ(d20.train.seq_len, 2048);
  EXPECT_EQ(d20.train.tokens_per_step, 524288);
}

// No preset fixes model.ffn_hidden: left at 0 it is 4 * d_model, so a --set of the width scales the
// MLP with it (a preset's fixed 3072 once stayed 3072 at d_model 2048).
TEST_F(ConfigTest, PresetsDeriveTheMlpWidthFromTheModelWidth) {
  for (const auto& entry : fs::directory_iterator(fs::path(GFWA_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_FALSE(json::parse(slurp(entry.path().string()))["model"].contains("ffn_hidden"));
  }
  const std::string preset = std::string(GFWA_SOURCE_DIR) + "/configs/gpt124m_gatedfwa.json";
  EXPECT_EQ(load_config(preset).model.hidden(), 3072);
  EXPECT_EQ(load_config(preset, {"model.d_model=2048", "model.n_heads=16"}).model.hidden(), 8192);
  EXPECT_EQ(load_config(preset, {"model.d_model=2048", "model.n_heads=16", "model.ffn_hidden=5632"}).model.hidden(),
            5632);
}

TEST_F(ConfigTest, JsonRoundTripIsExact) {
  for (uint64_t seed : {1u, 7u, 42u, 1234u, 99991u, 31337u}) {
    SCOPED_TRACE(seed);
    const RunConfig c = random_config(seed);
    const json j = config_to_json(c);
    const RunConfig back = config_from_json(json::parse(j.dump()), "roundtrip");
    EXPECT_EQ(fingerprint(back), fingerprint(c));
    EXPECT_EQ(config_to_json(back), j);
  }
  // Every key is written, and floats print as the short decimal a user would write.
  const json d = config_to_json(RunConfig{});
  EXPECT_EQ(d["optimizer"]["lr"].dump(), "0.0006");
  EXPECT_EQ(d["model"]["init_std"].dump(), "0.02");
  EXPECT_EQ(d["model"]["attention"]["mode"], "gatedfwa");
  EXPECT_EQ(d.size(), 9u);
  EXPECT_EQ(d["model"].size(), 10u);
  EXPECT_EQ(d["model"]["init_from"], "");
  EXPECT_EQ(d["model"]["attention"].size(), 7u);
  EXPECT_EQ(d["model"]["attention"]["pattern"], "");
  EXPECT_EQ(d["model"]["attention"]["nsa"], json({{"sliding", "gatedfwa"}, {"block", 64}, {"top_k", 16}}));
}

// ---- overrides ---------------------------------------------------------------------------------

TEST_F(ConfigTest, OverridesApplyOnTopOfFile) {
  const std::string path = write("base.json", R"({"model": {"attention": {"window": 64}}, "data": {"shuffle": true}})");
  const RunConfig c = load_config(path, {"model.attention.window=256", "schedule.type=wsd", "train.backend=cpu",
                                         "data.shuffle=false", "optimizer.lr=1.5e-3", "train.token_budget=123456789012",
                                         "train.seed=18446744073709551615", "data.train=a,b=c_*.bin",
                                         "eval.sample_prompt=42", "model.attention.mode=swa",
                                         "model.attention.token_shift=true", "model.n_layers=3", "model.n_layers=5"});
  EXPECT_EQ(c.model.attention.window, 256);
  EXPECT_EQ(c.schedule.type, "wsd");
  EXPECT_EQ(c.train.backend, "cpu");
  EXPECT_FALSE(c.data.shuffle);
  EXPECT_EQ(c.optimizer.lr, 1.5e-3f);
  EXPECT_EQ(c.train.token_budget, 123456789012);
  EXPECT_EQ(c.train.seed, 18446744073709551615ull);
  EXPECT_EQ(c.data.train, "a,b=c_*.bin");          // split at the first '=' only
  EXPECT_EQ(c.eval.sample_prompt, "42");           // string keys take the text as written
  EXPECT_EQ(c.model.attention.mode, AttnMode::swa);
  EXPECT_TRUE(c.model.attention.token_shift);
  EXPECT_EQ(c.model.n_layers, 5);                  // the last override wins
  // A quoted JSON string is decoded (escapes included).
  EXPECT_EQ(load_config("", {R"(eval.sample_prompt="Mr. \"Darcy\"\n")"}).eval.sample_prompt, "Mr. \"Darcy\"\n");
  const auto tasks = load_config("", {R"(eval.tasks={"hellaswag": "hs/val.jsonl", "copa": "copa/val.jsonl"})"}).eval.tasks;
  EXPECT_EQ(tasks, (std::map<std::string, std::string>{{"copa", "copa/val.jsonl"}, {"hellaswag", "hs/val.jsonl"}}));
}

TEST_F(ConfigTest, BadOverridesNameTheOverride) {
  std::string msg = config_error([] { load_config("", {"model.attention.windw=256"}); });
  expect_contains(msg, "--set model.attention.windw=256: model.attention.windw: unknown key");
  expect_contains(msg, "did you mean model.attention.window?");
  msg = config_error([] { load_config("", {"model.attention.window=0"}); });
  expect_contains(msg, "--set model.attention.window=0: model.attention.window: must be >= 1 (got 0)");
  msg = config_error([] { load_config("", {"model.attention.window=wide"}); });
  expect_contains(msg, "model.attention.window: expected an integer (got \"wide\")");
  msg = config_error([] { load_config("", {"data.shuffle=no"}); });
  expect_contains(msg, "--set data.shuffle=no: data.shuffle: expected true or false");
  msg = config_error([] { load_config("", {"model.attention={\"window\": 3}"}); });
  expect_contains(msg, "model.attention: is a section, not a key");
  msg = config_error([] { load_config("", {"model.window"}); });
  expect_contains(msg, "--set model.window: expected key.path=value");
  msg = config_error([] { load_config("", {"=3"}); });
  expect_contains(msg, "expected key.path=value");
  msg = config_error([] { load_config("", {"data.train=bad\xff.bin"}); });
  expect_contains(msg, "data.train: value is not valid UTF-8");
  msg = config_error([] { load_config("", {"model.d_model.x=3"}); });
  expect_contains(msg, "model.d_model.x: unknown key");
  // A rule between keys blames the override that broke it, even when the other key came from the file.
  const std::string path = write("heads.json", R"({"model": {"d_model": 768, "n_heads": 12}})");
  msg = config_error([&] { load_config(path, {"model.n_heads=7"}); });
  expect_contains(msg, "--set model.n_heads=7: model.d_model: must be divisible by model.n_heads (768 % 7 = 5)");
  // File mistakes are found before the overrides are applied, and blamed on the file.
  const std::string typo = write("typo.json", R"({"model": {"windw": 3}})");
  msg = config_error([&] { load_config(typo, {"model.attention.window=3"}); });
  expect_contains(msg, typo + ": model.windw: unknown key");
}

// ---- bad files ---------------------------------------------------------------------------------

TEST_F(ConfigTest, MissingOrUnreadableFile) {
  const std::string missing = (dir_ / "nope.json").string();
  expect_contains(config_error([&] { load_config(missing); }), missing + ": cannot open: No such file or directory");
  expect_contains(config_error([&] { load_config(dir_.string()); }), dir_.string() + ": is a directory");
}

TEST_F(ConfigTest, MalformedJsonReportsLineAndColumn) {
  struct Case {
    const char* text;
    const char* where;  // "line:column" of the offending character, counted by hand (1-based)
  };
  const Case cases[] = {
      {"{\n  \"model\": {\n    \"d_model\": 128,\n  }\n}\n", "4:3"},  // trailing comma
      {"{\"model\": {\"d_model\": 12x}}", "1:25"},  // stray letter after a number
      {"{\n  \"train\": {\n    \"backend\": \"cpu\n\" }\n}", "3:20"},  // raw newline inside a string
      {"{\n  \"model\": {\n", "3:1"},  // truncated
      {"{\"a\": 1}\n}", "2:1"},  // text after the object
      {"", "1:1"},  // empty file
      {"{\"data\": {\"train\": \"\xff\"}}", "1:21"},  // invalid UTF-8
  };
  int i = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string path = write("malformed_" + std::to_string(i++) + ".json", c.text);
    expect_contains(config_error([&] { load_config(path); }), path + ":" + c.where + ": malformed JSON: ");
  }
}

// Issue 20: a number JSON cannot hold as a double names the file and the key, not the library.
TEST_F(ConfigTest, NumberOutOfRangeNamesFileAndKey) {
  const std::string path = write("huge.json", "{\n  \"optimizer\": {\"beta1\": 0.9, \"lr\": 1e400}\n}\n");
  const std::string msg = config_error([&] { load_config(path); });
  expect_contains(msg, path + ":2:");
  expect_contains(msg, "optimizer.lr: number out of range (1e400)");
}

// Issue 20: the JSON parser stops at a NUL byte; whatever follows it must not be dropped silently.
TEST_F(ConfigTest, NulByteIsAnError) {
  const std::string path = write("nul.json", std::string("{\"train\": {\"max_steps\": 5}}\n\0{\"junk\": 1}", 40));
  expect_contains(config_error([&] { load_config(path); }), path + ":2:1: a NUL byte (a config is text)");
}

TEST_F(ConfigTest, StructureErrors) {
  struct Case {
    const char* text;
    const char* expect;  // after "<file>: "
  };
  const Case cases[] = {
      {"[1, 2]", "the top level must be a JSON object (got array)"},
      {"3", "the top level must be a JSON object (got number)"},
      {R"({"modle": {}})", "modle: unknown key (did you mean model?)"},
      {R"({"model": {"attention": {"windw": 3}}})", "model.attention.windw: unknown key (did you mean model.attention.window?)"},
      {R"({"window": 3})", "window: unknown key (did you mean model.attention.window?)"},
      {R"({"optimizer": {"learning_rate": 3}})", "optimizer.learning_rate: unknown key"},
      {R"({"model": 5})", "model: must be an object (got 5)"},
      {R"({"model": null})", "model: must be an object (got null)"},
      {R"({"model": {"attention": [1]}})", "model.attention: must be an object (got [1])"},
      {R"({"model": {"d_model": 128, "n_layers": 2, "d_model": 256}})", "model.d_model: duplicate key"},
      {R"({"train": {}, "train": {}})", "train: duplicate key"},
  };
  int i = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string path = write("structure_" + std::to_string(i++) + ".json", c.text);
    expect_contains(config_error([&] { load_config(path); }), path + ": " + c.expect);
  }
  const std::string path = write("no_hint.json", R"({"model": {"xyzzy": 1}})");
  EXPECT_EQ(config_error([&] { load_config(path); }).find("did you mean"), std::string::npos);
}

struct BadValue {
  const char* json;
  const char* key;
  const char* problem;
};

// Wrong types, then out-of-range values and broken rules between keys: one case per rule.
const BadValue kBadValues[] = {
    {R"({"model": {"n_layers": "12"}})", "model.n_layers", "expected an integer (got \"12\")"},
    {R"({"model": {"attention": {"window": 256.0}}})", "model.attention.window", "expected an integer (got 256.0)"},
    {R"({"model": {"attention": {"window": 256.5}}})", "model.attention.window", "expected an integer (got 256.5)"},
    {R"({"model": {"vocab_size": null}})", "model.vocab_size", "expected an integer (got null)"},
    {R"({"train": {"batch_size": true}})", "train.batch_size", "expected an integer (got true)"},
    {R"({"train": {"batch_size": 3000000000}})", "train.batch_size", "out of range for a 32-bit integer (got 3000000000)"},
    {R"({"train": {"max_steps": 18446744073709551615}})", "train.max_steps", "out of range for a 64-bit integer"},
    {R"({"train": {"seed": -1}})", "train.seed", "expected a non-negative integer (got -1)"},
    {R"({"train": {"seed": 1.5}})", "train.seed", "expected a non-negative integer (got 1.5)"},
    {R"({"data": {"shuffle": "false"}})", "data.shuffle", "expected true or false (got \"false\")"},
    {R"({"model": {"attention": {"token_shift": 1}}})", "model.attention.token_shift", "expected true or false (got 1)"},
    {R"({"train": {"backend": 1}})", "train.backend", "expected a string (got 1)"},
    {R"({"model": {"attention": {"mode": 3}}})", "model.attention.mode", "expected a string (got 3)"},
    {R"({"optimizer": {"lr": "3e-4"}})", "optimizer.lr", "expected a number (got \"3e-4\")"},
    {R"({"optimizer": {"lr": 1e39}})", "optimizer.lr", "out of range for a 32-bit float"},

    {R"({"model": {"vocab_size": 1}})", "model.vocab_size", "must be >= 2 (got 1)"},
    {R"({"model": {"n_layers": 0}})", "model.n_layers", "must be >= 1 (got 0)"},
    {R"({"model": {"d_model": 0}})", "model.d_model", "must be >= 1 (got 0)"},
    {R"({"model": {"n_heads": 0}})", "model.n_heads", "must be >= 1 (got 0)"},
    {R"({"model": {"ffn_hidden": -1}})", "model.ffn_hidden", "must be >= 0 (got -1)"},
    {R"({"model": {"norm_eps": 0}})", "model.norm_eps", "must be > 0 (got 0)"},
    {R"({"model": {"init_std": -0.02}})", "model.init_std", "must be > 0 (got -0.02)"},
    {R"({"model": {"attention": {"mode": "linear"}}})", "model.attention.mode",
     "must be one of full|swa|gatedfwa|nsa (got \"linear\")"},
    {R"({"model": {"attention": {"window": 0}}})", "model.attention.window", "must be >= 1 (got 0)"},
    {R"({"model": {"attention": {"rope_theta": 0}}})", "model.attention.rope_theta", "must be > 0 (got 0)"},
    {R"({"model": {"attention": {"pattern": 3}}})", "model.attention.pattern",
     "expected a string of letters (\"SSSL\") or a list of {\"mode\", \"window\"} objects (got 3)"},
    {R"({"model": {"n_layers": 10, "attention": {"pattern": "SSSL"}}})", "model.attention.pattern",
     "\"SSSL\" has 4 letters, which do not tile model.n_layers 10 (the letters repeat over the layers: give a "
     "length that divides it, or a list of 10 layers)"},
    {R"({"model": {"n_layers": 3, "attention": {"pattern": "SsL"}}})", "model.attention.pattern",
     "letter 's' at position 2 of \"SsL\" is neither S (model.attention.mode with model.attention.window) nor L "
     "(full attention)"},
    {R"({"model": {"n_layers": 2, "attention": {"pattern": [{"mode": "full"}]}}})", "model.attention.pattern",
     "lists 1 layers, the model has model.n_layers 2"},
    {R"({"model": {"attention": {"pattern": []}}})", "model.attention.pattern",
     "an empty list (leave the key out, or \"\", for the same attention in every layer)"},
    {R"({"model": {"attention": {"pattern": ["S"]}}})", "model.attention.pattern",
     "layer 0: expected an object {\"mode\": ..., \"window\": ...} (got \"S\")"},
    {R"({"model": {"attention": {"pattern": [{"mode": "full"}, {"window": 3}]}}})", "model.attention.pattern",
     "layer 1: needs a mode (full|swa|gatedfwa|nsa)"},
    {R"({"model": {"attention": {"pattern": [{"mode": "gated"}]}}})", "model.attention.pattern",
     "layer 0: mode must be one of full|swa|gatedfwa|nsa (got \"gated\")"},
    {R"({"model": {"attention": {"pattern": [{"mode": "swa", "window": 0}]}}})", "model.attention.pattern",
     "layer 0: window must be >= 1 (got 0)"},
    {R"({"model": {"attention": {"pattern": [{"mode": "swa", "window": "64"}]}}})", "model.attention.pattern",
     "layer 0: window expected an integer (got \"64\")"},
    {R"({"model": {"attention": {"pattern": [{"mode": "swa", "windw": 64}]}}})", "model.attention.pattern",
     "layer 0: unknown key \"windw\" (expected mode, window)"},
    {R"({"model": {"attention": {"nsa": {"sliding": "full"}}}})", "model.attention.nsa.sliding",
     "must be swa or gatedfwa (got \"full\")"},
    {R"({"model": {"attention": {"nsa": {"sliding": "nsa"}}}})", "model.attention.nsa.sliding",
     "must be swa or gatedfwa (got \"nsa\")"},
    {R"({"model": {"attention": {"nsa": {"block": 0}}}})", "model.attention.nsa.block", "must be >= 1 (got 0)"},
    {R"({"model": {"attention": {"nsa": {"top_k": 0}}}})", "model.attention.nsa.top_k", "must be >= 1 (got 0)"},
    {R"({"model": {"attention": {"nsa": {"topk": 4}}}})", "model.attention.nsa.topk",
     "unknown key (did you mean model.attention.nsa.top_k?)"},
    {R"({"model": {"attention": {"mode": "nsa", "nsa": {"block": 32}}}, "train": {"backend": "cuda"}})",
     "model.attention.nsa.block",
     "must be 64 with train.backend cuda (the block size its NSA kernels are built for; got 32)"},
    {R"({"model": {"attention": {"pattern": [{"mode": "nsa"}], "nsa": {"top_k": 65}}, "n_layers": 1},
        "train": {"backend": "cuda"}})",
     "model.attention.nsa.top_k", "must be <= 64 with train.backend cuda (its NSA kernels' limit; got 65)"},
    {R"({"model": {"attention": {"mode": "nsa"}, "init_from": "x.safetensors"}})", "model.init_from",
     "cannot start a model with nsa layers: exported weights (gfwa export) do not cover nsa yet (got \"x.safetensors\")"},
    {R"({"model": {"d_model": 768, "n_heads": 10}})", "model.d_model", "must be divisible by model.n_heads (768 % 10 = 8)"},
    {R"({"model": {"n_kv_heads": -1}})", "model.n_kv_heads", "must be >= 0 (got -1)"},
    {R"({"model": {"n_heads": 12, "n_kv_heads": 5}})", "model.n_kv_heads", "must divide model.n_heads (12 % 5 = 2)"},
    {R"({"model": {"n_heads": 12, "n_kv_heads": 24}})", "model.n_kv_heads",
     "must divide model.n_heads (12 % 24 = 12)"},
    {R"({"model": {"d_model": 66, "n_heads": 2}})", "model.n_heads",
     "head_dim = d_model / n_heads must be even for RoPE (got 66 / 2 = 33)"},
    {R"({"model": {"d_model": 768, "n_heads": 24}, "train": {"backend": "cuda"}})", "model.n_heads",
     "head_dim = d_model / n_heads = 768 / 24 = 32 is not supported by the GPU path (train.backend cuda supports "
     "head_dim 64 and 128)"},
    {R"({"optimizer": {"lr": -0.001}})", "optimizer.lr", "must be >= 0 (got -0.001)"},
    {R"({"optimizer": {"beta1": 1.0}})", "optimizer.beta1", "must be in [0, 1) (got 1.0)"},
    {R"({"optimizer": {"beta2": -0.1}})", "optimizer.beta2", "must be in [0, 1) (got -0.1)"},
    {R"({"optimizer": {"eps": 0}})", "optimizer.eps", "must be > 0 (got 0)"},
    {R"({"optimizer": {"eps": 1e-60}})", "optimizer.eps", "must be > 0 (got 1e-60)"},  // underflows to 0
    {R"({"optimizer": {"weight_decay": -0.1}})", "optimizer.weight_decay", "must be >= 0 (got -0.1)"},
    {R"({"optimizer": {"grad_clip": -1}})", "optimizer.grad_clip", "must be >= 0 (got -1)"},
    {R"({"optimizer": {"type": "sgd"}})", "optimizer.type", "must be one of adamw|muon (got \"sgd\")"},
    {R"({"optimizer": {"muon": {"lr": -0.02}}})", "optimizer.muon.lr", "must be >= 0 (got -0.02)"},
    {R"({"optimizer": {"muon": {"momentum": 1}}})", "optimizer.muon.momentum", "must be in [0, 1) (got 1)"},
    {R"({"optimizer": {"muon": {"nesterov": "yes"}}})", "optimizer.muon.nesterov", "expected true or false (got \"yes\")"},
    {R"({"optimizer": {"muon": {"ns_steps": 0}}})", "optimizer.muon.ns_steps", "must be >= 1 (got 0)"},
    {R"({"optimizer": {"muon": {"ns_steps": 2.5}}})", "optimizer.muon.ns_steps", "expected an integer (got 2.5)"},
    {R"({"optimizer": {"muon": {"weight_decay": -1}}})", "optimizer.muon.weight_decay", "must be >= 0 (got -1)"},
    {R"({"schedule": {"type": "step"}})", "schedule.type", "must be one of cosine|linear|constant|wsd (got \"step\")"},
    {R"({"schedule": {"warmup_steps": -1}})", "schedule.warmup_steps", "must be >= 0 (got -1)"},
    {R"({"schedule": {"final_lr_fraction": 1.5}})", "schedule.final_lr_fraction", "must be in [0, 1] (got 1.5)"},
    {R"({"schedule": {"final_lr_fraction": -0.5}})", "schedule.final_lr_fraction", "must be in [0, 1] (got -0.5)"},
    {R"({"schedule": {"decay_fraction": 0}})", "schedule.decay_fraction", "must be in (0, 1] (got 0)"},
    {R"({"schedule": {"decay_fraction": 1.01}})", "schedule.decay_fraction", "must be in (0, 1] (got 1.01)"},
    {R"({"train": {"backend": "gpu"}})", "train.backend", "must be one of auto|cpu|cuda (got \"gpu\")"},
    {R"({"train": {"batch_size": 0}})", "train.batch_size", "must be >= 1 (got 0)"},
    {R"({"train": {"seq_len": 0}})", "train.seq_len", "must be >= 1 (got 0)"},
    {R"({"train": {"tokens_per_step": -8}})", "train.tokens_per_step", "must be >= 0 (got -8)"},
    {R"({"train": {"batch_size": 8, "seq_len": 128, "tokens_per_step": 10000}})", "train.tokens_per_step",
     "must be a multiple of train.batch_size * train.seq_len = 1024 (got 10000)"},
    {R"({"train": {"max_steps": 0}})", "train.max_steps", "must be >= 1 when train.token_budget is 0 (got 0)"},
    {R"({"train": {"max_steps": -1, "token_budget": 100}})", "train.max_steps", "must be >= 0 (got -1)"},
    {R"({"train": {"token_budget": -1}})", "train.token_budget", "must be >= 0 (got -1)"},
    {R"({"train": {"max_bad_steps": 0}})", "train.max_bad_steps", "must be >= 1 (got 0)"},
    {R"({"train": {"recompute": "some"}})", "train.recompute", "must be one of none|selective|full (got \"some\")"},
    {R"({"eval": {"every": -1}})", "eval.every", "must be >= 0 (got -1)"},
    {R"({"eval": {"batches": -1}})", "eval.batches", "must be >= 0 (got -1)"},
    {R"({"eval": {"sample_every": -1}})", "eval.sample_every", "must be >= 0 (got -1)"},
    {R"({"eval": {"sample_tokens": 0}})", "eval.sample_tokens", "must be >= 1 (got 0)"},
    {R"({"eval": {"sample_prompt": ""}})", "eval.sample_prompt", "must not be empty (got \"\")"},
    {R"({"eval": {"tasks": {"squad": "dev.json"}}})", "eval.tasks", "unknown task 'squad' (expected hellaswag|"},
    {R"({"eval": {"tasks": {"piqa": ""}}})", "eval.tasks", "task 'piqa' needs a file"},
    {R"({"eval": {"tasks": {"piqa": 3}}})", "eval.tasks", "the file of 'piqa' must be a string"},
    {R"({"eval": {"tasks": ["piqa"]}})", "eval.tasks", "expected an object of task name -> file"},
    {R"({"data": {"train": ""}})", "data.train", "must not be empty (got \"\")"},
    {R"({"data": {"val": ""}})", "data.val", "must not be empty (got \"\")"},
    {R"({"data": {"tokenizer": ""}})", "data.tokenizer", "must not be empty (got \"\")"},
    {R"({"checkpoint": {"every": -1}})", "checkpoint.every", "must be >= 0 (got -1)"},
    {R"({"checkpoint": {"keep_last": 0}})", "checkpoint.keep_last", "must be >= 1 (got 0)"},
    {R"({"checkpoint": {"keep_every": -1}})", "checkpoint.keep_every", "must be >= 0 (got -1)"},
    {R"({"logging": {"every": 0}})", "logging.every", "must be >= 1 (got 0)"},
    {R"({"logging": {"level": "verbose"}})", "logging.level",
     "must be one of trace|debug|info|warn|error (got \"verbose\")"},
    {R"({"distributed": {"id_exchange": "mpi"}})", "distributed.id_exchange", "must be one of tcp|file (got \"mpi\")"},
    {R"({"distributed": {"id_exchange": "file"}})", "distributed.id_file",
     "must not be empty when distributed.id_exchange is \"file\""},
    {R"({"distributed": {"timeout_s": 0}})", "distributed.timeout_s", "must be >= 1 (got 0)"},
    {R"({"distributed": {"bucket_mb": 0}})", "distributed.bucket_mb", "must be >= 1 (got 0)"},
};

TEST_F(ConfigTest, BadValuesNameFileAndKey) {
  int i = 0;
  for (const auto& c : kBadValues) {
    SCOPED_TRACE(c.json);
    const std::string path = write("bad_" + std::to_string(i++) + ".json", c.json);
    expect_contains(config_error([&] { load_config(path); }), path + ": " + c.key + ": " + c.problem);
    // The same JSON handed over in memory is judged the same way, under the given source name.
    expect_contains(config_error([&] { config_from_json(json::parse(c.json), "memory"); }),
                    std::string("memory: ") + c.key + ": " + c.problem);
  }
}

TEST_F(ConfigTest, EdgesThatAreAccepted) {
  // head_dim 32 is fine off the GPU path; max_steps 0 is fine with a token budget; a file exchange with a file.
  EXPECT_NO_THROW(load_config("", {"model.d_model=256", "model.n_heads=8", "train.backend=cpu"}));
  EXPECT_NO_THROW(load_config("", {"model.d_model=256", "model.n_heads=8", "train.backend=auto"}));
  EXPECT_NO_THROW(load_config("", {"model.d_model=1024", "model.n_heads=8", "train.backend=cuda"}));  // 128
  EXPECT_NO_THROW(load_config("", {"train.max_steps=0", "train.token_budget=1000000"}));
  EXPECT_NO_THROW(load_config("", {"distributed.id_exchange=file", "distributed.id_file=/shared/id"}));
  EXPECT_NO_THROW(load_config("", {"optimizer.beta1=0", "schedule.final_lr_fraction=1", "schedule.decay_fraction=1",
                                   "optimizer.lr=0", "optimizer.grad_clip=0", "model.vocab_size=2"}));
  EXPECT_NO_THROW(load_config("", {"train.batch_size=8", "train.seq_len=128", "train.tokens_per_step=3072"}));
  // NSA: any block and top_k off the GPU path, and the cuda backend's settings ignored without nsa layers.
  EXPECT_NO_THROW(load_config("", {"model.attention.mode=nsa", "model.attention.nsa.block=3",
                                   "model.attention.nsa.top_k=100", "train.backend=cpu"}));
  EXPECT_NO_THROW(load_config("", {"model.attention.nsa.block=3", "train.backend=cuda"}));
  const RunConfig nsa = load_config("", {"model.attention.mode=nsa", "model.attention.nsa.sliding=swa",
                                         "model.n_kv_heads=1", "model.attention.pattern=SSSL", "train.backend=cuda"});
  EXPECT_TRUE(nsa.model.layer_nsa(0));
  EXPECT_FALSE(nsa.model.layer_nsa(3));
  EXPECT_FALSE(nsa.model.layer_gated(0));
  EXPECT_EQ(nsa.model.attention.nsa, (NsaConfig{AttnMode::swa, 64, 16}));
}

TEST_F(ConfigTest, BackendAndWorldSizeChecks) {
  RunConfig c;
  c.model.d_model = 96;
  c.model.n_heads = 3;  // head_dim 32
  EXPECT_NO_THROW(check_backend_support(c, "cpu", "run.json"));
  std::string msg = config_error([&] { check_backend_support(c, "cuda", "run.json"); });
  expect_contains(msg, "run.json: model.n_heads: head_dim = d_model / n_heads = 96 / 3 = 32 is not supported");
  expect_contains(msg, "64 and 128");
  c.model.d_model = 128;
  c.model.n_heads = 2;
  c.model.attention.mode = AttnMode::nsa;
  c.model.attention.nsa.block = 16;
  EXPECT_NO_THROW(check_backend_support(c, "cpu", "run.json"));
  expect_contains(config_error([&] { check_backend_support(c, "cuda", "run.json"); }),
                  "run.json: model.attention.nsa.block: must be 64 with train.backend cuda");

  c.train.batch_size = 4;
  c.train.seq_len = 256;
  c.train.tokens_per_step = 0;
  EXPECT_EQ(accumulation_steps(c, 3, "run.json"), 1);
  c.train.tokens_per_step = 4 * 256 * 2 * 5;
  EXPECT_EQ(accumulation_steps(c, 2, "run.json"), 5);
  EXPECT_EQ(accumulation_steps(c, 1, "run.json"), 10);
  msg = config_error([&] { accumulation_steps(c, 3, "run.json"); });
  expect_contains(msg, "run.json: train.tokens_per_step: must be a multiple of train.batch_size * train.seq_len * "
                       "world size = 4 * 256 * 3 = 3072 (got 10240)");
  config_error([&] { accumulation_steps(c, 20, "run.json"); });  // fewer tokens than one micro-batch per rank
}

// ---- the gfwa config subcommand ---------------------------------------------------------------

int run_shell(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(ConfigTest, ConfigCommandPrintsResolvedConfig) {
  const std::string gfwa = std::string(GFWA_BINARY_DIR) + "/gfwa";
  const std::string preset = std::string(GFWA_SOURCE_DIR) + "/configs/quickstart.json";
  const std::string out = (dir_ / "out.json").string(), err = (dir_ / "err.txt").string();
  ASSERT_EQ(run_shell("'" + gfwa + "' config --config '" + preset +
                      "' --set model.attention.window=16 --set 'data.train=x,y_*.bin' >'" + out + "' 2>'" + err + "'"),
            0)
      << slurp(err);
  const json printed = json::parse(slurp(out));
  const RunConfig expected = load_config(preset, {"model.attention.window=16", "data.train=x,y_*.bin"});
  EXPECT_EQ(printed, config_to_json(expected));
  EXPECT_EQ(printed["data"]["train"], "x,y_*.bin");
}

// --memory-plan: the cuda backend's plan, computed without a GPU, the lines a cuda run logs at start.
TEST_F(ConfigTest, ConfigCommandPrintsTheMemoryPlan) {
  const std::string gfwa = std::string(GFWA_BINARY_DIR) + "/gfwa";
  const std::string preset = std::string(GFWA_SOURCE_DIR) + "/configs/gpt124m_gatedfwa.json";
  const std::string out = (dir_ / "plan.txt").string();
  ASSERT_EQ(run_shell("'" + gfwa + "' config --config '" + preset + "' --memory-plan >'" + out + "' 2>&1"), 0)
      << slurp(out);
  const std::string text = slurp(out);
  expect_contains(text, "cuda backend memory plan: 17.");
  expect_contains(text, "micro-batch up to 32 x 1024, train.recompute none, logits chunk 10624 rows");
  expect_contains(text, "activations (saved for backward)");
  expect_contains(text, "13.108 GiB");
  // train.recompute full keeps each layer's input only (12 x 48 MiB) and one layer's recomputed set.
  ASSERT_EQ(run_shell("'" + gfwa + "' config --config '" + preset + "' --set train.recompute=full --memory-plan >'" +
                      out + "' 2>&1"),
            0)
      << slurp(out);
  const std::string full = slurp(out);
  expect_contains(full, "micro-batch up to 32 x 1024, train.recompute full, logits chunk 10624 rows");
  expect_contains(full, "recomputed activations (one layer, train.recompute)");
  EXPECT_EQ(full.find("13.108 GiB"), std::string::npos) << full;
}

TEST_F(ConfigTest, ConfigCommandFailsOnBadInput) {
  const std::string gfwa = std::string(GFWA_BINARY_DIR) + "/gfwa";
  const std::string bad = write("bad.json", R"({"model": {"attention": {"window": 0}}})");
  const std::string err = (dir_ / "err.txt").string();
  EXPECT_NE(run_shell("'" + gfwa + "' config --config '" + bad + "' >/dev/null 2>'" + err + "'"), 0);
  std::string msg = slurp(err);
  expect_contains(msg, bad + ": model.attention.window: must be >= 1 (got 0)");
  EXPECT_EQ(std::count(msg.begin(), msg.end(), '\n'), 1) << msg;

  const std::string missing = (dir_ / "missing.json").string();
  EXPECT_NE(run_shell("'" + gfwa + "' config --config '" + missing + "' >/dev/null 2>'" + err + "'"), 0);
  expect_contains(slurp(err), missing + ": cannot open");

  EXPECT_NE(run_shell("'" + gfwa + "' config --set train.backend=tpu >/dev/null 2>'" + err + "'"), 0);
  expect_contains(slurp(err), "--set train.backend=tpu: train.backend: must be one of auto|cpu|cuda");

  // Issue 20: two --config files are refused rather than the last one taken silently.
  const std::string good = write("good.json", "{}");
  EXPECT_NE(run_shell("'" + gfwa + "' config --config '" + good + "' --config '" + bad + "' >/dev/null 2>'" + err + "'"),
            0);
  expect_contains(slurp(err), "--config is given 2 times");
}

}  // namespace
