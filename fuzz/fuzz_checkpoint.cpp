// Checkpoint state (state.json and a rank part, read back on resume, possibly on another machine):
// the input replaces state.json of a small valid checkpoint, once as it is and once re-signed
// with a correct self_sha256 (so that the checks behind the checksum are reached too). Every
// problem must be a CheckpointError; checkpoint_problem and load_checkpoint must agree.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <spdlog/spdlog.h>

#include "data/sha256.h"
#include "train/checkpoint.h"
#include "dist/checkpoint_ranks.h"

namespace {

const std::string& checkpoint_dir() {
  static const std::string dir = [] {
    spdlog::set_level(spdlog::level::off);
    const std::string root = "/tmp/gfwa_fuzz_checkpoint_" + std::to_string(::getpid());
    std::filesystem::remove_all(root);
    gfwa::CheckpointData d;
    d.config = {{"model", {{"d_model", 4}}}};
    d.state = {{"step", 3}, {"loader", {{"epoch", 0}}}};
    d.params.assign(8, 0.5f);
    d.adam_m.assign(8, 0.25f);
    d.adam_v.assign(8, 0.125f);
    return gfwa::save_checkpoint(root, 3, d);
  }();
  return dir;
}

void check(const std::string& dir) {
  const std::string problem = gfwa::checkpoint_problem(dir);
  try {
    gfwa::load_checkpoint(dir);
    if (!problem.empty()) __builtin_trap();  // loaded what the check called invalid
  } catch (const gfwa::CheckpointError&) {
  }
  try {
    gfwa::load_rank_part(dir, 0, 1);
  } catch (const gfwa::CheckpointError&) {
  }
}

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::trunc) << text; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = checkpoint_dir();
  const std::string text(reinterpret_cast<const char*>(data), size);
  static const std::string good_state = [&] {
    std::ifstream f(dir + "/state.json");
    return std::string(std::istreambuf_iterator<char>(f), {});
  }();
  write(dir + "/state.json", text);
  write(dir + "/" + gfwa::dist::rank_state_name(0, 1) + ".json", text);
  check(dir);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_object()) {
    j.erase("self_sha256");
    const nlohmann::json good = nlohmann::json::parse(good_state);
    if (!j.contains("files")) j["files"] = good.at("files");
    j["self_sha256"] = gfwa::sha256_hex(j.dump());
    write(dir + "/state.json", j.dump());
    write(dir + "/" + gfwa::dist::rank_state_name(0, 1) + ".json", j.dump());
    check(dir);
  }
  write(dir + "/state.json", good_state);
  return 0;
}
