// Per-layer attention patterns (model.attention.pattern, docs/config.md): how letters and lists
// resolve to each layer's mode and window, the configuration key (files, --set, the round trip,
// which source a problem is blamed on), and the decoders' per-layer caches (a full layer's cache
// holds every token, a windowed one W). The models themselves: test_cpu_model.cpp (bitwise
// equalities, finite differences), test_decode_cpu.cpp (decoding), test_train_metrics.cpp (FLOPs),
// test_train_export.cpp (config.json), test_cuda_memory_plan.cpp (device memory).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/cpu_backend.h"
#include "model/decoder.h"
#include "train/config_io.h"

using namespace gfwa;

namespace {

ModelConfig model(int layers, const std::string& letters) {
  ModelConfig m;
  m.n_layers = layers;
  m.attention.mode = AttnMode::gatedfwa;
  m.attention.window = 64;
  m.attention.pattern.letters = letters;
  return m;
}

std::string config_problem(const std::string& file, const std::vector<std::string>& overrides) {
  try {
    load_config(file, overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(AttentionPattern, LettersTileTheLayers) {
  const ModelConfig m = model(8, "SSSL");
  for (int l = 0; l < 8; ++l) {
    const LayerAttention a = m.layer_attention(l);
    if (l % 4 == 3) {
      EXPECT_EQ(a.mode, AttnMode::full) << l;
    } else {
      EXPECT_EQ(a, (LayerAttention{AttnMode::gatedfwa, 64})) << l;
    }
  }
  EXPECT_TRUE(m.any_gated());
  EXPECT_TRUE(m.any_full());
  EXPECT_EQ(attention_pattern_text(m), "gatedfwa:64x3,full,gatedfwa:64x3,full");
  EXPECT_EQ(attention_pattern_text(model(8, "")), "gatedfwa:64");
  EXPECT_FALSE(model(8, "").any_full());
  EXPECT_FALSE(model(2, "LL").any_gated());
  EXPECT_EQ(model(3, "SLS").layer_attention(2).mode, AttnMode::gatedfwa);  // as long as the model: no repeat
  EXPECT_THROW(m.layer_attention(8), std::invalid_argument);
  EXPECT_THROW(m.layer_attention(-1), std::invalid_argument);
}

TEST(AttentionPattern, ListsGiveEachLayerItsOwn) {
  ModelConfig m = model(3, "");
  m.attention.pattern.layers = {{AttnMode::swa, 0}, {AttnMode::gatedfwa, 2048}, {AttnMode::full, 0}};
  EXPECT_EQ(m.layer_attention(0), (LayerAttention{AttnMode::swa, 64}));  // window 0: model.attention.window
  EXPECT_EQ(m.layer_attention(1), (LayerAttention{AttnMode::gatedfwa, 2048}));
  EXPECT_EQ(m.layer_attention(2).mode, AttnMode::full);
  EXPECT_FALSE(m.layer_gated(0));
  EXPECT_TRUE(m.layer_gated(1));
  EXPECT_EQ(attention_pattern_text(m), "swa:64,gatedfwa:2048,full");
}

TEST(AttentionPattern, ProblemsNameWhatIsWrong) {
  EXPECT_EQ(attention_pattern_problem(model(12, "SSSL")), "");
  EXPECT_EQ(attention_pattern_problem(model(12, "")), "");
  EXPECT_NE(attention_pattern_problem(model(10, "SSSL")).find("do not tile model.n_layers 10"), std::string::npos);
  EXPECT_NE(attention_pattern_problem(model(4, "SXSL")).find("letter 'X' at position 2"), std::string::npos);
  EXPECT_NE(attention_pattern_problem(model(2, "SSSL")).find("do not tile model.n_layers 2"), std::string::npos);
  ModelConfig both = model(2, "SL");
  both.attention.pattern.layers = {{AttnMode::full, 0}, {AttnMode::full, 0}};
  EXPECT_EQ(attention_pattern_problem(both), "give letters or a list of layers, not both");
  ModelConfig short_list = model(3, "");
  short_list.attention.pattern.layers = {{AttnMode::full, 0}};
  EXPECT_EQ(attention_pattern_problem(short_list), "lists 1 layers, the model has model.n_layers 3");
  // Every user of a config that skipped validation hears the same problem.
  try {
    model(10, "SSSL").layer_attention(0);
    FAIL() << "an invalid pattern must not resolve";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("model.attention.pattern: \"SSSL\" has 4 letters"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(CpuBackend(model(10, "SSSL"), 1, 4), std::invalid_argument);
}

TEST(AttentionPattern, ConfigKeyTakesLettersOrAList) {
  RunConfig c = load_config("", {"model.n_layers=8", "model.attention.pattern=SSSL"});
  EXPECT_EQ(c.model.attention.pattern.letters, "SSSL");
  EXPECT_EQ(config_to_json(c)["model"]["attention"]["pattern"], "SSSL");
  c = load_config("", {"model.n_layers=2", R"(model.attention.pattern=[{"mode": "swa", "window": 128}, {"mode": "full"}])"});
  EXPECT_EQ(c.model.attention.pattern.layers,
            (std::vector<LayerAttention>{{AttnMode::swa, 128}, {AttnMode::full, 0}}));
  // Written back as given: a layer without a window keeps following model.attention.window.
  const nlohmann::json j = config_to_json(c);
  EXPECT_EQ(j["model"]["attention"]["pattern"],
            nlohmann::json::parse(R"([{"mode": "swa", "window": 128}, {"mode": "full"}])"));
  EXPECT_EQ(config_from_json(j, "round trip").model.attention.pattern, c.model.attention.pattern);
  // "" is the uniform model, as when the key is left out.
  EXPECT_TRUE(load_config("", {"model.attention.pattern="}).model.attention.pattern.empty());
  EXPECT_TRUE(load_config("", {R"(model.attention.pattern="")"}).model.attention.pattern.empty());
}

// A problem between the pattern and the layer count is blamed on the override that made it, else
// on the file.
TEST(AttentionPattern, ProblemsBlameTheOverride) {
  const std::string file = ::testing::TempDir() + "gfwa_pattern_" + std::to_string(::getpid()) + ".json";
  std::ofstream(file) << R"({"model": {"n_layers": 8, "attention": {"pattern": "SSSL"}}})";
  EXPECT_EQ(config_problem(file, {}), "");
  EXPECT_EQ(config_problem(file, {"model.n_layers=10"})
                .rfind("--set model.n_layers=10: model.attention.pattern: \"SSSL\" has 4 letters", 0),
            0u);
  EXPECT_EQ(config_problem(file, {"model.attention.pattern=SSL"})
                .rfind("--set model.attention.pattern=SSL: model.attention.pattern: \"SSL\" has 3 letters", 0),
            0u);
  std::ofstream(file) << R"({"model": {"n_layers": 6, "attention": {"pattern": "SSSL"}}})";
  EXPECT_EQ(config_problem(file, {}).rfind(file + ": model.attention.pattern: \"SSSL\" has 4 letters", 0), 0u);
  std::remove(file.c_str());
  EXPECT_NE(config_problem("", {R"(model.attention.pattern=[{"mode": "full", "size": 3}])"})
                .find("layer 0: unknown key \"size\" (expected mode, window)"),
            std::string::npos);
}

// Tokens a slot may hold and each layer's cache: bounded only by a full layer, whose cache holds
// every token; windowed layers keep W entries, or max_length when that is less and a full layer
// bounds the length anyway.
TEST(AttentionPattern, DecoderCachesFollowEachLayer) {
  const int64_t unbounded = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(decoder_max_length(model(2, "SS"), 100), unbounded);
  EXPECT_EQ(decoder_cache_caps(model(2, "SS"), 100), (std::vector<int>{64, 64}));
  EXPECT_EQ(decoder_max_length(model(2, "SL"), 100), 100);
  EXPECT_EQ(decoder_cache_caps(model(2, "SL"), 100), (std::vector<int>{64, 100}));
  EXPECT_EQ(decoder_cache_caps(model(2, "SL"), 40), (std::vector<int>{40, 40}));
  EXPECT_THROW(decoder_max_length(model(2, "SL"), 0), std::invalid_argument);
  EXPECT_NO_THROW(decoder_max_length(model(2, "SS"), 0));  // windowed layers ignore it

  // The cpu decoder's caches: keys and values [B, H, cap, D] per layer, plus the gate state of
  // gated layers (lam [B, H, cap] fp32 and lam_now [B, H] double).
  ModelConfig m = model(2, "SL");
  m.vocab_size = 50;
  m.d_model = 16;
  m.n_heads = 2;
  CpuBackend be(m, 1, 8);
  const int64_t B = 3, H = 2, D = 8;
  const auto dec = be.make_decoder(int(B), 100);
  EXPECT_EQ(dec->max_length(), 100);
  EXPECT_EQ(dec->cache_bytes(), 4 * (2 * B * H * 64 * D + B * H * 64) + 8 * B * H + 4 * (2 * B * H * 100 * D));
}

// NSA in patterns: an S layer takes model.attention.mode, so S is an nsa layer when the mode is nsa, and
// a list entry may name nsa with its own window (the sliding branch's); the gates follow the sliding
// branch. No decoder takes an nsa layer: the refusal names the layer and the mode.
TEST(AttentionPattern, NsaLayers) {
  ModelConfig m = model(4, "SL");
  m.attention.mode = AttnMode::nsa;
  EXPECT_EQ(attention_pattern_text(m), "nsa:64,full,nsa:64,full");
  EXPECT_TRUE(m.any_nsa());
  EXPECT_TRUE(m.layer_gated(0));  // the default sliding branch: gatedfwa
  m.attention.nsa.sliding = AttnMode::swa;
  EXPECT_FALSE(m.any_gated());
  EXPECT_EQ(m.nsa_shape(2, 3, 100).window, 64);
  m.attention.pattern = AttentionPattern{"", {{AttnMode::gatedfwa, 0}, {AttnMode::nsa, 128}, {AttnMode::full, 0},
                                               {AttnMode::swa, 0}}};
  EXPECT_FALSE(m.layer_nsa(0));
  EXPECT_TRUE(m.layer_nsa(1));
  const NsaShape s = m.nsa_shape(1, 3, 100);
  EXPECT_EQ(s.window, 128);
  EXPECT_EQ(s.block, 64);
  EXPECT_EQ(s.top_k, 16);
  EXPECT_EQ(s.Hkv, m.kv_heads());
  EXPECT_EQ(attention_pattern_text(m), "gatedfwa:64,nsa:128,full,swa:64");

  EXPECT_EQ(decoder_support_problem(model(2, "SL")), "");
  const std::string problem = decoder_support_problem(m);
  EXPECT_NE(problem.find("layer 1 has model.attention.mode nsa"), std::string::npos) << problem;
  EXPECT_THROW(decoder_max_length(m, 100), std::invalid_argument);
  m.vocab_size = 50;
  m.d_model = 16;
  m.n_heads = 2;
  CpuBackend be(m, 1, 8);
  try {
    be.make_decoder(1, 100);
    ADD_FAILURE() << "an nsa model was given a decoder";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("nsa"), std::string::npos) << e.what();
  }
  EXPECT_NE(config_problem("", {"model.attention.pattern=[{\"mode\": \"nsa\", \"window\": 0}]", "model.n_layers=1"})
                .find("layer 0: window must be >= 1"),
            std::string::npos);
}
