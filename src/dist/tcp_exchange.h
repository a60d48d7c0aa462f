// The tcp id exchange: rank 0 listens on MASTER_PORT and hands its blob (the NCCL unique id) to
// each other rank, which connects to MASTER_ADDR:MASTER_PORT, retrying until the timeout.
// Each peer sends its rank and world size first, so a launch with mismatched sizes fails at once.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "dist/socket_io.h"

namespace gfwa::dist {

class TcpIdServer {
 public:
  // Listens at once (port 0: a free port, see port()). Throws DistError if the port is taken.
  TcpIdServer(int port, int world);
  int port() const { return port_; }
  // Returns when ranks 1..world-1 all have the blob. Throws DistError naming the ranks that did not
  // connect in time, or the first peer whose rank or world size does not fit.
  void serve(const std::vector<uint8_t>& blob, std::chrono::milliseconds timeout);

 private:
  Fd listener_;
  int port_;
  int world_;
};

// Rank `rank` (>= 1) fetches rank 0's blob. Throws DistError naming the address on timeout.
std::vector<uint8_t> tcp_fetch_id(const std::string& host, int port, int rank, int world,
                                  std::chrono::milliseconds timeout);

}  // namespace gfwa::dist
