// The file id exchange, for clusters where ranks share a file system but rank 0's port is not
// reachable. Rank 0 writes `path` atomically (temp + rename) with its world size, a fresh nonce,
// the launcher's run id and the time; every other rank polls for it, writes `path.ack.<rank>`
// carrying the nonce, and rank 0 removes all the files once every rank has answered.
// A file from another run is ignored: its run id differs, or it is older than the timeout (rank 0
// of a live run cannot have written it earlier: it would have given up and removed it).
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dist/env.h"

namespace gfwa::dist {

// The id file (magic, world, nonce, time, run id, blob); decode_id_file is nullopt for anything
// else, a torn or foreign file included (fuzzed: fuzz/).
struct IdFile {
  uint32_t world = 0;
  uint64_t nonce = 0;
  int64_t written_ns = 0;
  std::string run_id;
  std::vector<uint8_t> blob;
};
std::vector<uint8_t> encode_id_file(const IdFile& f);
std::optional<IdFile> decode_id_file(const std::vector<uint8_t>& bytes);

// Every rank returns rank 0's blob; the others' `blob` is ignored. Throws DistError naming the
// file and the ranks that did not answer in time.
std::vector<uint8_t> file_exchange_id(const DistEnv& env, const std::string& path, const std::vector<uint8_t>& blob,
                                      std::chrono::milliseconds timeout);

}  // namespace gfwa::dist
