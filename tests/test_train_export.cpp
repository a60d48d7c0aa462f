// gfwa export and model.init_from (docs/interop.md): names, round trips through a run, and the
// error for every way an imported file can be wrong.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>

#include <gtest/gtest.h>

#include "data/tokenizer.h"
#include "model/backend_factory.h"
#include "model/cpu_model.h"
#include "model/exported_weights.h"
#include "model/safetensors.h"
#include "train/backend_spec.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/export.h"
#include "train/trainer.h"
#include "test_train_util.h"

namespace gfwa {
namespace {
using namespace testing_train;

std::string ckpt(const std::string& out, int step) { return out + "/checkpoints/" + checkpoint_dir_name(step); }

class TrainExport : public TrainFixture {
 protected:
  TrainExport() : TrainFixture(5) {}

  // The trainer tests' tiny GatedFWA model with token shift (every kind of tensor), 2 steps.
  nlohmann::json config() const {
    auto j = tiny_config(data_);
    j["model"]["attention"]["token_shift"] = true;
    j["train"]["max_steps"] = 2;
    j["eval"]["every"] = 0;
    j["checkpoint"]["every"] = 0;
    return j;
  }
  // A trained checkpoint exported as fp32; returns the path of its model.safetensors.
  std::string trained_export() {
    EXPECT_EQ(train(cfg_of(config()), {root_ + "/a", ""}), 0);
    export_checkpoint(ckpt(root_ + "/a", 2), root_ + "/export", WeightDtype::f32);
    return root_ + "/export/model.safetensors";
  }
  // path rewritten with edit() applied to its tensor list (the data stays in `file`).
  std::string rewritten(const std::string& path, const std::function<void(std::vector<SafetensorsTensor>&)>& edit) {
    const SafetensorsFile file(path);
    std::vector<SafetensorsTensor> t = file.tensors();
    edit(t);
    const std::string out = root_ + "/edited.safetensors";
    write_safetensors(out, t, file.metadata());
    return out;
  }
  void expect_import_error(const std::string& path, const std::string& part) const {
    const ParamLayout layout(cfg_of(config()).model);
    try {
      read_exported_weights(path, layout);
      ADD_FAILURE() << "no error; expected one containing: " << part;
    } catch (const SafetensorsError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  }
};

TEST(ExportedNames, EveryParameterHasADistinctLlamaStyleName) {
  ModelConfig m;
  m.n_layers = 2;
  m.attention.token_shift = true;
  const ParamLayout layout(m);
  std::set<std::string> names;
  for (const auto& t : layout.tensors()) names.insert(exported_name(t.name));
  EXPECT_EQ(names.size(), layout.tensors().size());
  EXPECT_EQ(exported_name("embed"), "model.embed_tokens.weight");
  EXPECT_EQ(exported_name("final_norm"), "model.norm.weight");
  EXPECT_EQ(exported_name("layers.1.attn.wq"), "model.layers.1.self_attn.q_proj.weight");
  EXPECT_EQ(exported_name("layers.0.mlp.w1"), "model.layers.0.mlp.gate_proj.weight");
  EXPECT_EQ(exported_name("layers.0.mlp.w3"), "model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(exported_name("layers.0.mlp.w2"), "model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(exported_name("layers.0.attn.gate_b"), "model.layers.0.self_attn.forget_gate.bias");
  EXPECT_EQ(exported_name("layers.0.attn.shift_v"), "model.layers.0.self_attn.v_shift.weight");
  EXPECT_THROW(exported_name("layers.0.attn.bogus"), std::invalid_argument);
  EXPECT_THROW(exported_name("lm_head"), std::invalid_argument);
}

// export -> model.init_from -> a step at lr 0 -> export gives the same bytes, fp32 and bf16; an fp32
// import restores the checkpoint's parameters exactly.
TEST_F(TrainExport, ExportImportExportIsByteIdentical) {
  ASSERT_EQ(train(cfg_of(config()), {root_ + "/a", ""}), 0);
  for (WeightDtype dtype : {WeightDtype::f32, WeightDtype::bf16}) {
    const std::string tag = weight_dtype_name(dtype), first = root_ + "/first_" + tag;
    export_checkpoint(ckpt(root_ + "/a", 2), first, dtype);
    auto j = config();
    j["model"]["init_from"] = first + "/model.safetensors";
    j["optimizer"]["lr"] = 0.0;
    j["train"]["max_steps"] = 1;
    ASSERT_EQ(train(cfg_of(j), {root_ + "/b_" + tag, ""}), 0);
    const std::string second = root_ + "/second_" + tag;
    export_checkpoint(ckpt(root_ + "/b_" + tag, 1), second, dtype);
    for (const char* f : {"/model.safetensors", "/config.json"}) {
      const std::string x = file_bytes(first + f);
      ASSERT_FALSE(x.empty()) << first << f;
      EXPECT_TRUE(x == file_bytes(second + f)) << tag << f;
    }
    if (dtype == WeightDtype::f32) {
      EXPECT_EQ(load_checkpoint(ckpt(root_ + "/b_" + tag, 1)).params, load_checkpoint(ckpt(root_ + "/a", 2)).params);
    }
  }
}

// A run started from an export resumes without naming the file again (it is not read on resume).
TEST_F(TrainExport, ResumeNeedsNoInitFrom) {
  const std::string path = trained_export();
  auto j = config();
  j["model"]["init_from"] = path;
  j["train"]["max_steps"] = 3;
  j["checkpoint"]["every"] = 1;
  ASSERT_EQ(train(cfg_of(j), {root_ + "/b", ""}), 0);
  j["model"]["init_from"] = "";
  EXPECT_EQ(train(cfg_of(j), {root_ + "/c", ckpt(root_ + "/b", 2)}), 0);
  EXPECT_EQ(load_checkpoint(ckpt(root_ + "/c", 3)).params, load_checkpoint(ckpt(root_ + "/b", 3)).params);
}

TEST_F(TrainExport, ConfigJsonCarriesTheHyperparameters) {
  trained_export();
  const auto c = nlohmann::json::parse(file_bytes(root_ + "/export/config.json"));
  EXPECT_EQ(c.at("vocab_size"), kVocab);
  EXPECT_EQ(c.at("hidden_size"), 16);
  EXPECT_EQ(c.at("num_hidden_layers"), 2);
  EXPECT_EQ(c.at("num_attention_heads"), 2);
  EXPECT_EQ(c.at("num_key_value_heads"), 2);  // n_kv_heads 0: as many as the query heads
  EXPECT_EQ(c.at("head_dim"), 8);
  EXPECT_EQ(c.at("intermediate_size"), 64);
  EXPECT_EQ(c.at("rms_norm_eps").dump(), "1e-06");
  EXPECT_EQ(c.at("attention_mode"), "gatedfwa");
  EXPECT_EQ(c.at("sliding_window"), 5);
  EXPECT_EQ(c.at("token_shift"), true);
  EXPECT_EQ(c.at("torch_dtype"), "float32");
  EXPECT_EQ(c.at("tokenizer").at("sha256"), Tokenizer::kVocabSha256);
  EXPECT_EQ(c.at("gfwa_export_format"), 2);
  const nlohmann::json same = {{"attention_mode", "gatedfwa"}, {"sliding_window", 5}};
  EXPECT_EQ(c.at("layer_attention"), nlohmann::json::array({same, same}));
  RunConfig full = cfg_of(config());
  full.model.attention.mode = AttnMode::full;
  EXPECT_TRUE(exported_config(full, WeightDtype::bf16, {}).at("sliding_window").is_null());
  // model.attention.pattern: each layer's own mode and window (L: full attention, no window).
  RunConfig mixed = cfg_of(config());
  mixed.model.attention.pattern.letters = "LS";
  const nlohmann::json layers = exported_config(mixed, WeightDtype::f32, {}).at("layer_attention");
  EXPECT_EQ(layers, nlohmann::json::parse(R"([{"attention_mode": "full", "sliding_window": null},
                                             {"attention_mode": "gatedfwa", "sliding_window": 5}])"));
}

TEST_F(TrainExport, ImportReadsBackTheParametersAndRefusesEveryMismatch) {
  const std::string path = trained_export();
  const ParamLayout layout(cfg_of(config()).model);
  EXPECT_EQ(read_exported_weights(path, layout), load_checkpoint(ckpt(root_ + "/a", 2)).params);

  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  expect_import_error(rewritten(path, [&](auto& t) {
                        for (auto& x : t) {
                          if (x.name == q) x.dtype = "F16", x.bytes /= 2;
                        }
                      }),
                      "tensor " + q + " has dtype F16; gfwa imports F32 or BF16");
  expect_import_error(rewritten(path, [&](auto& t) {
                        for (auto& x : t) {
                          if (x.name == q) x.shape = {8, 32};
                        }
                      }),
                      "tensor " + q + " has shape [8,32], the configured model expects [16,16]");
  const std::string vs = "model.layers.1.self_attn.v_shift.weight";
  expect_import_error(rewritten(path, [&](auto& t) { t.erase(std::find_if(t.begin(), t.end(), [&](auto& x) { return x.name == vs; })); }),
                      "tensor " + vs + " is missing");
  const float extra[2] = {1, 2};
  expect_import_error(rewritten(path, [&](auto& t) { t.push_back({"lm_head.weight", "F32", {2}, extra, sizeof extra}); }),
                      "tensor lm_head.weight is not a parameter of the configured model");
  const float nan[16] = {0, 0, 0, NAN};
  expect_import_error(rewritten(path, [&](auto& t) {
                        for (auto& x : t) {
                          if (x.name == "model.norm.weight") x.data = nan;
                        }
                      }),
                      "tensor model.norm.weight holds a non-finite value at element 3");

  std::string bytes = file_bytes(path);
  const std::string bad = root_ + "/bad.safetensors";
  std::ofstream(bad, std::ios::binary) << bytes.substr(0, bytes.size() - 100);
  expect_import_error(bad, "truncated");
  bytes[10] = '\x01';
  std::ofstream(bad, std::ios::binary | std::ios::trunc) << bytes;
  expect_import_error(bad, "header is not valid JSON");
}

// Grouped-query attention: config.json carries num_key_value_heads (the LLaMA key), K/V tensors
// have n_kv_heads * head_dim rows, and an import into another n_kv_heads fails naming the shapes.
TEST_F(TrainExport, GroupedQueryExportCarriesKvHeadsAndImportChecksThem) {
  auto j = config();
  j["model"]["n_kv_heads"] = 1;
  ASSERT_EQ(train(cfg_of(j), {root_ + "/g", ""}), 0);
  export_checkpoint(ckpt(root_ + "/g", 2), root_ + "/gexport", WeightDtype::f32);
  const auto c = nlohmann::json::parse(file_bytes(root_ + "/gexport/config.json"));
  EXPECT_EQ(c.at("num_attention_heads"), 2);
  EXPECT_EQ(c.at("num_key_value_heads"), 1);
  const std::string path = root_ + "/gexport/model.safetensors";
  const SafetensorsFile f(path);
  EXPECT_EQ(f.find("model.layers.0.self_attn.q_proj.weight")->shape, (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(f.find("model.layers.0.self_attn.k_proj.weight")->shape, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(f.find("model.layers.0.self_attn.v_proj.weight")->shape, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(f.find("model.layers.0.self_attn.k_norm.weight")->shape, (std::vector<int64_t>{8}));
  EXPECT_EQ(f.find("model.layers.0.self_attn.k_shift.weight")->shape, (std::vector<int64_t>{1, 16}));
  EXPECT_EQ(read_exported_weights(path, ParamLayout(cfg_of(j).model)), load_checkpoint(ckpt(root_ + "/g", 2)).params);
  expect_import_error(path, "tensor model.layers.0.self_attn.k_proj.weight has shape [8,16], the configured model "
                            "expects [16,16] (check model.d_model, model.n_heads and model.n_kv_heads");
}

// The trainer names the key; a file of another attention mode fails on its extra tensors.
TEST_F(TrainExport, RunFromAnotherModesWeightsIsRefusedNamingKeyAndTensor) {
  const std::string path = trained_export();
  auto j = config();
  j["model"]["init_from"] = path;
  j["model"]["attention"]["mode"] = "swa";
  try {
    train(cfg_of(j), {root_ + "/b", ""});
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind("model.init_from: " + path + ": tensor model.layers.0.self_attn.forget_", 0), 0u) << m;
  }
  j["model"]["init_from"] = root_ + "/absent.safetensors";
  EXPECT_THROW(train(cfg_of(j), {root_ + "/c", ""}), std::runtime_error);
}

TEST_F(TrainExport, ExportRefusesANonEmptyOutAndLeavesNothingOnFailure) {
  ASSERT_EQ(train(cfg_of(config()), {root_ + "/a", ""}), 0);
  fs::create_directories(root_ + "/taken");
  std::ofstream(root_ + "/taken/keep") << "x";
  EXPECT_THROW(export_checkpoint(ckpt(root_ + "/a", 2), root_ + "/taken", WeightDtype::f32), std::runtime_error);
  EXPECT_EQ(file_bytes(root_ + "/taken/keep"), "x");
  fs::create_directories(root_ + "/empty");
  export_checkpoint(ckpt(root_ + "/a", 2), root_ + "/empty/", WeightDtype::bf16);  // an empty folder is fine
  EXPECT_TRUE(fs::exists(root_ + "/empty/model.safetensors"));

  std::ofstream(ckpt(root_ + "/a", 2) + "/model.bin", std::ios::binary | std::ios::app) << "junk";
  EXPECT_THROW(export_checkpoint(ckpt(root_ + "/a", 2), root_ + "/out/x", WeightDtype::f32), CheckpointError);
  EXPECT_FALSE(fs::exists(root_ + "/out/x"));
  for (const auto& e : fs::directory_iterator(root_))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

// A model with nsa layers trains through the trainer (validation passes included) but is not exported: the export format and the PyTorch reference do not describe nsa.
// The refusal names the layer and the mode, and nothing is written.
TEST_F(TrainExport, NsaTrainsButIsNotExported) {
  auto j = config();
  j["model"]["attention"]["mode"] = "nsa";
  j["model"]["attention"]["nsa"] = {{"block", 4}, {"top_k", 2}};  // T 11: two complete blocks and a partial one
  j["eval"]["every"] = 1;
  ASSERT_EQ(train(cfg_of(j), {root_ + "/a", ""}), 0);
  EXPECT_EQ(records(root_ + "/a", "eval").size(), 2u);
  try {
    export_checkpoint(ckpt(root_ + "/a", 2), root_ + "/export", WeightDtype::f32);
    ADD_FAILURE() << "an nsa model was exported";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 0 has model.attention.mode nsa"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(root_ + "/export"));
}

// gfwa eval --logits: per-position logits from last_logits equal the batch forward's.
TEST_F(TrainExport, BatchLogitsFileMatchesTheBatchForward) {
  const RunConfig cfg = cfg_of(config());
  auto backend = make_backend(backend_spec(cfg, 1, 0, false));
  backend->init_params(3);
  const int B = 2, T = 7;
  std::vector<int32_t> in(B * T), tgt(B * T);
  for (int i = 0; i < B * T; ++i) in[size_t(i)] = (i * 13) % kVocab, tgt[size_t(i)] = (i * 5) % kVocab;
  write_batch_logits(*backend, in, tgt, B, T, root_ + "/logits.safetensors");

  CpuModel<float> ref(cfg.model, B, T);
  backend->get_params(ref.params());
  ref.forward_loss(in.data(), tgt.data(), B, T);
  const SafetensorsFile f(root_ + "/logits.safetensors");
  ASSERT_EQ(f.find("logits")->shape, (std::vector<int64_t>{B, T, kVocab}));
  EXPECT_EQ(std::memcmp(f.find("input_ids")->data, in.data(), in.size() * 4), 0);
  EXPECT_EQ(std::memcmp(f.find("targets")->data, tgt.data(), tgt.size() * 4), 0);
  const auto* got = static_cast<const float*>(f.find("logits")->data);
  for (size_t i = 0; i < size_t(B) * T * kVocab; ++i) ASSERT_NEAR(got[i], ref.logits()[i], 1e-5f) << i;
}

}  // namespace
}  // namespace gfwa
