#include "dist/file_exchange.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <thread>

#include "dist/dist_error.h"
#include "dist/exchange_text.h"
#include "dist/wire.h"
#include "io/files.h"

namespace gfwa::dist {
namespace {

constexpr char kIdMagic[8] = {'G', 'F', 'W', 'A', 'I', 'D', 'F', '1'};
constexpr char kAckMagic[8] = {'G', 'F', 'W', 'A', 'A', 'C', 'K', '1'};
constexpr auto kPoll = std::chrono::milliseconds(20);

using Clock = std::chrono::steady_clock;
using Wall = std::chrono::system_clock;

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Wall::now().time_since_epoch()).count();
}

std::string ack_path(const std::string& path, int rank) { return path + ".ack." + std::to_string(rank); }

// Readers see the whole file or none (io/files.h).
void write_atomic(const std::string& path, const std::vector<uint8_t>& bytes, int rank) {
  try {
    write_file_atomic(path, bytes.data(), bytes.size());
  } catch (const std::runtime_error& e) {
    throw DistError("rank " + std::to_string(rank) + ": cannot write " + e.what());
  }
}

// nullopt while the file is not there (or not readable yet).
std::optional<std::vector<uint8_t>> read_all(const std::string& path) {
  try {
    const std::string text = read_file(path);
    return std::vector<uint8_t>(text.begin(), text.end());
  } catch (const std::runtime_error&) {
    return std::nullopt;
  }
}

// Pauses one poll interval, cut short at the deadline; false once the deadline has passed.
bool sleep_before(Clock::time_point deadline) {
  const auto now = Clock::now();
  if (now >= deadline) return false;
  std::this_thread::sleep_for(std::min<Clock::duration>(kPoll, deadline - now));
  return true;
}

void remove_files(const std::string& path, int world) {
  ::unlink(path.c_str());
  for (int r = 1; r < world; ++r) ::unlink(ack_path(path, r).c_str());
}

std::vector<uint8_t> publish(const DistEnv& env, const std::string& path, const std::vector<uint8_t>& blob,
                             std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  remove_files(path, env.world);  // leftovers of a crashed run
  IdFile f;
  f.world = uint32_t(env.world);
  f.nonce = (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}() ^ uint64_t(wall_ns());
  f.written_ns = wall_ns();
  f.run_id = env.run_id;
  f.blob = blob;
  write_atomic(path, encode_id_file(f), 0);

  std::vector<bool> acked(size_t(env.world), false);
  int left = env.world - 1;
  for (;;) {
    for (int r = 1; r < env.world; ++r) {
      if (acked[size_t(r)]) continue;
      const auto a = read_all(ack_path(path, r));
      if (a && a->size() == 16 && std::memcmp(a->data(), kAckMagic, 8) == 0 && wire::get_u64(a->data() + 8) == f.nonce) {
        acked[size_t(r)] = true;
        --left;
      }
    }
    if (left == 0) break;
    if (!sleep_before(deadline)) {
      remove_files(path, env.world);
      std::vector<int> missing;
      for (int r = 1; r < env.world; ++r)
        if (!acked[size_t(r)]) missing.push_back(r);
      throw DistError("rank 0: " + ranks_text(missing) + " did not read the id file " + path + " within " +
                      seconds_text(timeout) + " (not started, or " + path + " is not on a file system they share?)");
    }
  }
  remove_files(path, env.world);
  return blob;
}

std::vector<uint8_t> fetch(const DistEnv& env, const std::string& path, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const int64_t oldest_ns = wall_ns() - std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
  const std::string me = "rank " + std::to_string(env.rank);
  bool saw_stale = false;
  do {
    const auto bytes = read_all(path);
    if (!bytes) continue;
    const auto f = decode_id_file(*bytes);
    if (!f) throw DistError(me + ": " + path + " is not a gfwa id file (distributed.id_file points at another file?)");
    if ((!env.run_id.empty() && f->run_id != env.run_id) || f->written_ns < oldest_ns) {
      saw_stale = true;
      continue;
    }
    if (f->world != uint32_t(env.world))
      throw DistError(me + ": " + world_mismatch_text(env.rank, env.world, int(f->world)) + " (id file " + path + ")");
    std::vector<uint8_t> ack(kAckMagic, kAckMagic + 8);
    wire::put_u64(ack, f->nonce);
    write_atomic(ack_path(path, env.rank), ack, env.rank);
    return f->blob;
  } while (sleep_before(deadline));
  throw DistError(me + ": no id file from rank 0 at " + path + " within " + seconds_text(timeout) +
                  (saw_stale ? " (ignored one left by another run)" : ""));
}

}  // namespace

std::vector<uint8_t> encode_id_file(const IdFile& f) {
  std::vector<uint8_t> out(kIdMagic, kIdMagic + 8);
  wire::put_u32(out, f.world);
  wire::put_u64(out, f.nonce);
  wire::put_u64(out, uint64_t(f.written_ns));
  wire::put_u32(out, uint32_t(f.run_id.size()));
  out.insert(out.end(), f.run_id.begin(), f.run_id.end());
  wire::put_u32(out, uint32_t(f.blob.size()));
  out.insert(out.end(), f.blob.begin(), f.blob.end());
  return out;
}

std::optional<IdFile> decode_id_file(const std::vector<uint8_t>& b) {
  IdFile f;
  size_t pos = 8 + 4 + 8 + 8;
  if (b.size() < pos + 4 || std::memcmp(b.data(), kIdMagic, 8) != 0) return std::nullopt;
  f.world = wire::get_u32(b.data() + 8);
  f.nonce = wire::get_u64(b.data() + 12);
  f.written_ns = int64_t(wire::get_u64(b.data() + 20));
  const uint32_t id_len = wire::get_u32(b.data() + pos);
  pos += 4;
  if (id_len > wire::kMaxBlobBytes || b.size() < pos + id_len + 4) return std::nullopt;
  f.run_id.assign(b.begin() + long(pos), b.begin() + long(pos + id_len));
  pos += id_len;
  const uint32_t n = wire::get_u32(b.data() + pos);
  pos += 4;
  if (b.size() != pos + n) return std::nullopt;
  f.blob.assign(b.begin() + long(pos), b.end());
  return f;
}


std::vector<uint8_t> file_exchange_id(const DistEnv& env, const std::string& path, const std::vector<uint8_t>& blob,
                                      std::chrono::milliseconds timeout) {
  if (env.world == 1) return blob;
  return env.rank == 0 ? publish(env, path, blob, timeout) : fetch(env, path, timeout);
}

}  // namespace gfwa::dist
