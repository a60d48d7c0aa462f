#include "train/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <initializer_list>
#include <sstream>

#include <spdlog/spdlog.h>

#include "data/sha256.h"
#include "dist/checkpoint_ranks.h"
#include "io/files.h"
#include "io/pid_alive.h"

namespace gfwa {
namespace fs = std::filesystem;

namespace {

constexpr int kFormat = 1;
constexpr const char* kTempPrefix = ".tmp-";
constexpr const char* kOldPrefix = ".old-";

std::atomic<int64_t> g_fault_budget{-1};
std::atomic<WriteFault> g_fault_kind{WriteFault::fail};

[[noreturn]] void fail_errno(const std::string& what, const std::string& path, int err) {
  throw CheckpointError("checkpoint: cannot " + what + " " + path + ": " + std::strerror(err));
}

struct Span {
  const void* data;
  size_t bytes;
};

// Writes the spans, in order, to a new file and fsyncs it (io/files.h); the temporary checkpoint
// directory is what gets renamed into place. Consumes the injected fault budget.
void write_file_durably(const std::string& path, std::initializer_list<Span> spans) {
  try {
    write_file_synced(path, [&](FileSink& f) {
      for (const Span& s : spans) {
        const auto* p = static_cast<const char*>(s.data);
        const int64_t budget = g_fault_budget.load();
        if (budget < 0 || int64_t(s.bytes) <= budget) {
          f.write(p, s.bytes);
          if (budget >= 0) g_fault_budget.store(budget - int64_t(s.bytes));
          continue;
        }
        f.write(p, size_t(budget));  // the injected fault: the disk fills up here
        g_fault_budget.store(0);
        if (g_fault_kind.load() == WriteFault::stall) {
          for (;;) ::pause();
        }
        throw std::runtime_error(path + ": cannot write: " + std::strerror(ENOSPC));
      }
    });
  } catch (const std::runtime_error& e) {
    throw CheckpointError(std::string("checkpoint: ") + e.what());
  }
}

void write_file_durably(const std::string& path, const std::string& text) {
  write_file_durably(path, {{text.data(), text.size()}});
}

void fsync_dir_or_fail(const std::string& path) {
  try {
    fsync_dir(path);
  } catch (const std::runtime_error& e) {
    throw CheckpointError(std::string("checkpoint: ") + e.what());
  }
}

nlohmann::json file_entry(size_t bytes, const std::string& sha) { return {{"bytes", bytes}, {"sha256", sha}}; }

// Parses a step_* directory name; -1 for anything else (temporary and foreign entries).
int64_t step_of(const std::string& name) {
  if (name.rfind("step_", 0) != 0 || name.size() < 6) return -1;
  int64_t step = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

// step_* directories under root, oldest first.
std::vector<std::pair<int64_t, std::string>> list_steps(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const int64_t s = step_of(e.path().filename().string());
    if (s >= 0 && e.is_directory(ec)) out.emplace_back(s, e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Temporary directories left by writers that no longer run (killed mid-save).
void remove_stale_temporaries(const std::string& root) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(kTempPrefix, 0) != 0 && name.rfind(kOldPrefix, 0) != 0) continue;
    const long pid = std::strtol(name.substr(name.rfind('-') + 1).c_str(), nullptr, 10);
    if (pid != long(::getpid()) && pid_alive(pid)) continue;  // another process may still be writing it
    fs::remove_all(e.path(), ec);
  }
}

std::string read_all(const std::string& path) {
  try {
    return read_file(path);
  } catch (const std::runtime_error&) {
    throw CheckpointError("missing or unreadable file " + path);
  }
}

// Parses state.json and checks its own checksum; throws CheckpointError describing the problem.
nlohmann::json read_state(const std::string& dir) {
  const std::string path = dir + "/state.json";
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(read_all(path));
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError("state.json is not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!state.is_object() || !state.contains("self_sha256") || !state.contains("files"))
    throw CheckpointError("state.json lacks its checksums");
  const std::string want = state.at("self_sha256").get<std::string>();
  state.erase("self_sha256");
  if (sha256_hex(state.dump()) != want) throw CheckpointError("state.json fails its checksum");
  if (state.value("format", 0) != kFormat)
    throw CheckpointError("state.json has format " + state.value("format", nlohmann::json()).dump() +
                          ", expected " + std::to_string(kFormat));
  return state;
}

void check_entry(const nlohmann::json& files, const std::string& name, size_t bytes, const std::string& sha) {
  if (!files.contains(name)) throw CheckpointError("state.json does not list " + name);
  const auto& e = files.at(name);
  if (e.at("bytes").get<size_t>() != bytes)
    throw CheckpointError(name + " has " + std::to_string(bytes) + " bytes, expected " + e.at("bytes").dump());
  if (e.at("sha256").get<std::string>() != sha) throw CheckpointError(name + " fails its SHA-256 checksum");
}

// Reads a whole file of fp32 values into `parts` (filled in order; their sizes follow the file size
// split evenly), returning its SHA-256 and byte count.
std::pair<std::string, size_t> read_floats(const std::string& path, std::initializer_list<std::vector<float>*> parts) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw CheckpointError("missing or unreadable file " + path);
  const auto bytes = size_t(f.tellg());
  const size_t part_bytes = bytes / parts.size();
  if (part_bytes * parts.size() != bytes || part_bytes % sizeof(float) != 0)
    throw CheckpointError(path + " has " + std::to_string(bytes) + " bytes, not a whole number of fp32 tensors");
  f.seekg(0);
  Sha256 sha;
  for (auto* v : parts) {
    v->assign(part_bytes / sizeof(float), 0.0f);
    f.read(reinterpret_cast<char*>(v->data()), std::streamsize(part_bytes));
    if (size_t(f.gcount()) != part_bytes) throw CheckpointError("cannot read " + path);
    sha.update(v->data(), part_bytes);
  }
  return {sha.hex_digest(), bytes};
}

// Byte count and SHA-256 of a whole file; throws CheckpointError when it cannot be read.
std::pair<size_t, std::string> hash_file(const std::string& path) {
  std::error_code ec;
  const size_t bytes = size_t(fs::file_size(path, ec));
  if (ec) throw CheckpointError("missing or unreadable file " + fs::path(path).filename().string());
  try {
    return {bytes, sha256_file_hex(path)};
  } catch (const std::runtime_error&) {
    throw CheckpointError("cannot read " + path);
  }
}

// Parses rank r's part (rank-RRRRR-of-WWWWW.json) and checks its own checksum and identity.
nlohmann::json read_rank_json(const std::string& dir, int rank, int world) {
  const std::string name = dist::rank_state_name(rank, world) + ".json";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_all(dir + "/" + name));
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(name + " is not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object() || !j.contains("self_sha256")) throw CheckpointError(name + " lacks its checksum");
  const std::string want = j.at("self_sha256").get<std::string>();
  j.erase("self_sha256");
  if (sha256_hex(j.dump()) != want) throw CheckpointError(name + " fails its checksum");
  if (j.value("rank", -1) != rank || j.value("world", -1) != world)
    throw CheckpointError(name + " names rank " + j.value("rank", nlohmann::json()).dump() + " of " +
                          j.value("world", nlohmann::json()).dump());
  return j;
}

}  // namespace

RankPart load_rank_part(const std::string& dir, int rank, int world) {
  try {
    const nlohmann::json j = read_rank_json(dir, rank, world);
    RankPart p;
    p.state = j.at("state");
    if (j.contains("bin")) {
      const std::string bin = dist::rank_state_name(rank, world) + ".bin";
      const auto [sha, bytes] = read_floats(dir + "/" + bin, {&p.adam_m, &p.adam_v});
      check_entry(nlohmann::json{{bin, j.at("bin")}}, bin, bytes, sha);
    }
    return p;
  } catch (const std::exception& e) {
    throw CheckpointError("checkpoint " + dir + ": " + e.what());
  }
}

void inject_checkpoint_write_fault(int64_t after_bytes, WriteFault kind) {
  g_fault_kind.store(kind);
  g_fault_budget.store(after_bytes);
}

std::string checkpoint_dir_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08" PRId64, step);
  return buf;
}

std::string checkpoint_temp_dir(const std::string& root, int64_t step, long pid) {
  return root + "/" + kTempPrefix + checkpoint_dir_name(step) + "-" + std::to_string(pid);
}

void begin_checkpoint(const std::string& root, const std::string& tmp) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) throw CheckpointError("checkpoint: cannot create directory " + root + ": " + ec.message());
  remove_stale_temporaries(root);
  fs::remove_all(tmp, ec);
  if (::mkdir(tmp.c_str(), 0755) != 0) fail_errno("create directory", tmp, errno);
}

namespace {

// The digest of two spans (the second may be empty), computed on its own thread: a 1.3b checkpoint's
// 20 GB are hashed while they are written instead of after (SHA-256 and the write each take seconds).
std::future<std::string> digest_async(const void* a, size_t na, const void* b = nullptr, size_t nb = 0) {
  return std::async(std::launch::async, [=] {
    Sha256 sha;
    sha.update(a, na);
    if (nb > 0) sha.update(b, nb);
    return sha.hex_digest();
  });
}

}  // namespace

void write_checkpoint_files(const std::string& tmp, const CheckpointData& data) {
  const bool has_opt = !data.adam_m.empty() || !data.adam_v.empty();
  if (has_opt && (data.adam_m.size() != data.params.size() || data.adam_v.size() != data.params.size()))
    throw CheckpointError("checkpoint: optimizer state and parameters differ in size");
  const size_t n = data.params.size() * sizeof(float);
  auto model_sha = digest_async(data.params.data(), n);
  std::future<std::string> opt_sha;
  if (has_opt) opt_sha = digest_async(data.adam_m.data(), n, data.adam_v.data(), n);
  write_file_durably(tmp + "/model.bin", {{data.params.data(), n}});
  if (has_opt) write_file_durably(tmp + "/optimizer.bin", {{data.adam_m.data(), n}, {data.adam_v.data(), n}});
  nlohmann::json files = {{"model.bin", file_entry(n, model_sha.get())}};
  if (has_opt) files["optimizer.bin"] = file_entry(2 * n, opt_sha.get());
  const std::string config_text = data.config.dump(2) + "\n";
  write_file_durably(tmp + "/config.json", config_text);
  files["config.json"] = file_entry(config_text.size(), sha256_hex(config_text));

  nlohmann::json state = data.state;
  state["format"] = kFormat;
  state["files"] = files;
  state["self_sha256"] = sha256_hex(state.dump());
  write_file_durably(tmp + "/state.json", state.dump(2) + "\n");
}

void write_rank_part(const std::string& tmp, int rank, int world, const RankPart& part) {
  if (part.adam_m.size() != part.adam_v.size())
    throw CheckpointError("checkpoint: rank " + std::to_string(rank) + "'s optimizer shard has m and v of different sizes");
  const std::string stem = tmp + "/" + dist::rank_state_name(rank, world);
  nlohmann::json j = {{"format", kFormat}, {"rank", rank}, {"world", world}, {"state", part.state}};
  if (!part.adam_m.empty()) {
    const size_t n = part.adam_m.size() * sizeof(float);
    auto sha = digest_async(part.adam_m.data(), n, part.adam_v.data(), n);
    write_file_durably(stem + ".bin", {{part.adam_m.data(), n}, {part.adam_v.data(), n}});
    j["bin"] = file_entry(2 * n, sha.get());
  }
  j["self_sha256"] = sha256_hex(j.dump());
  write_file_durably(stem + ".json", j.dump(2) + "\n");
}

std::string commit_checkpoint(const std::string& root, int64_t step, const std::string& tmp) {
  const std::string name = checkpoint_dir_name(step);
  const std::string final_dir = root + "/" + name;
  fsync_dir_or_fail(tmp);
  // Same step saved again (e.g. a signal right after resuming): move the old one aside first.
  const std::string old = root + "/" + kOldPrefix + name + "-" + std::to_string(::getpid());
  const bool replacing = fs::exists(final_dir);
  if (replacing && ::rename(final_dir.c_str(), old.c_str()) != 0) fail_errno("move aside", final_dir, errno);
  if (::rename(tmp.c_str(), final_dir.c_str()) != 0) fail_errno("rename " + tmp + " to", final_dir, errno);
  fsync_dir_or_fail(root);
  std::error_code ec;
  if (replacing) fs::remove_all(old, ec);
  return final_dir;
}

void discard_checkpoint(const std::string& tmp) {
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

std::string save_checkpoint(const std::string& root, int64_t step, const CheckpointData& data) {
  if (data.adam_m.size() != data.params.size() || data.adam_v.size() != data.params.size())
    throw CheckpointError("checkpoint: optimizer state and parameters differ in size");
  const std::string tmp = checkpoint_temp_dir(root, step, long(::getpid()));
  begin_checkpoint(root, tmp);
  try {
    write_checkpoint_files(tmp, data);
    return commit_checkpoint(root, step, tmp);
  } catch (...) {
    discard_checkpoint(tmp);
    throw;
  }
}

CheckpointData load_checkpoint(const std::string& dir) {
  try {
    CheckpointData d;
    d.state = read_state(dir);
    const auto& files = d.state.at("files");
    const std::string config_text = read_all(dir + "/config.json");
    check_entry(files, "config.json", config_text.size(), sha256_hex(config_text));
    d.config = nlohmann::json::parse(config_text);

    const auto [model_sha, model_bytes] = read_floats(dir + "/model.bin", {&d.params});
    check_entry(files, "model.bin", model_bytes, model_sha);
    if (files.contains("optimizer.bin")) {
      const auto [opt_sha, opt_bytes] = read_floats(dir + "/optimizer.bin", {&d.adam_m, &d.adam_v});
      check_entry(files, "optimizer.bin", opt_bytes, opt_sha);
      if (d.adam_m.size() != d.params.size()) throw CheckpointError("model.bin and optimizer.bin sizes do not match");
    }
    const int parts = d.state.value("rank_parts", 0);
    for (int r = 0; r < parts; ++r) read_rank_json(dir, r, parts);
    d.state.erase("files");
    return d;
  } catch (const std::exception& e) {
    throw CheckpointError("checkpoint " + dir + ": " + e.what());
  }
}

std::string checkpoint_problem(const std::string& dir) {
  try {
    const nlohmann::json state = read_state(dir);
    const auto& files = state.at("files");
    for (const char* name : {"config.json", "model.bin"})
      if (!files.contains(name)) return std::string("state.json does not list ") + name;
    for (const auto& [name, entry] : files.items()) {
      (void)entry;
      const auto [bytes, sha] = hash_file(dir + "/" + name);
      check_entry(files, name, bytes, sha);
    }
    const int parts = state.value("rank_parts", 0);
    for (int r = 0; r < parts; ++r) {
      const nlohmann::json j = read_rank_json(dir, r, parts);
      if (j.contains("bin")) {
        const std::string bin = dist::rank_state_name(r, parts) + ".bin";
        const auto [bytes, sha] = hash_file(dir + "/" + bin);
        check_entry(nlohmann::json{{bin, j.at("bin")}}, bin, bytes, sha);
      }
    }
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

std::string set_aside_invalid(const std::string& dir, const std::string& problem) {
  const fs::path from(dir);
  const std::string base = (from.parent_path() / (kInvalidPrefix + from.filename().string())).string();
  std::string to = base;
  std::error_code ec;
  for (int n = 2; fs::exists(to, ec) || fs::is_symlink(to, ec); ++n) to = base + "-" + std::to_string(n);
  if (::rename(dir.c_str(), to.c_str()) != 0) fail_errno("move aside the invalid checkpoint", dir, errno);
  spdlog::warn("checkpoint {} is invalid ({}): moved aside to {}", dir, problem, to);
  return to;
}

CheckpointScan scan_checkpoints(const std::string& root) {
  CheckpointScan scan;
  const auto steps = list_steps(root);
  for (auto it = steps.rbegin(); it != steps.rend() && !scan.latest; ++it) {
    std::string problem = checkpoint_problem(it->second);
    if (problem.empty()) scan.latest = it->second;
    else scan.invalid.emplace_back(it->second, std::move(problem));
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.path().filename().string().rfind(std::string(kInvalidPrefix) + "step_", 0) == 0)
      scan.set_aside.push_back(e.path().string());
  std::sort(scan.set_aside.rbegin(), scan.set_aside.rend());
  return scan;
}

std::string describe_invalid(const CheckpointScan& scan) {
  std::string out;
  for (const auto& [dir, problem] : scan.invalid) out += (out.empty() ? "" : "; ") + dir + " (" + problem + ")";
  for (const auto& dir : scan.set_aside) out += (out.empty() ? "" : "; ") + dir + " (set aside as invalid earlier)";
  return out;
}

std::optional<std::string> find_latest_valid(const std::string& root) {
  const CheckpointScan scan = scan_checkpoints(root);
  for (const auto& [dir, problem] : scan.invalid) spdlog::warn("skipping checkpoint {}: {}", dir, problem);
  return scan.latest;
}

void prune_checkpoints(const std::string& root, int keep_last, int keep_every, std::set<std::string>& verified) {
  const auto steps = list_steps(root);
  const size_t keep = size_t(std::max(1, keep_last));
  size_t kept = 0;
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const auto& [step, dir] = *it;
    if (kept < keep) {
      const std::string problem = verified.count(dir) ? std::string() : checkpoint_problem(dir);
      if (problem.empty()) {
        verified.insert(dir);
        ++kept;
      } else {
        verified.erase(dir);
        set_aside_invalid(dir, problem);
      }
      continue;
    }
    if (keep_every > 0 && step % keep_every == 0) continue;
    verified.erase(dir);
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (ec) spdlog::warn("cannot remove old checkpoint {}: {}", dir, ec.message());
  }
}

void prune_checkpoints(const std::string& root, int keep_last, int keep_every) {
  std::set<std::string> verified;
  prune_checkpoints(root, keep_last, keep_every, verified);
}

}  // namespace gfwa
