// The tcp id exchange: rank 0 listens on MASTER_PORT and hands its blob (the NCCL unique id) to
// each other rank, which connects to MASTER_ADDR:MASTER_PORT, retrying until the timeout.
// Each peer sends its rank and world size first, so a launch with mismatched sizes fails at once.
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dist/socket_io.h"

namespace gfwa::dist {

// The messages, parsed apart from the sockets (and fuzzed: fuzz/). A peer's hello: magic, rank,
// world size. Rank 0's reply header: status, its world size, length of the blob or message.
constexpr size_t kHelloBytes = 16, kReplyHeaderBytes = 12;
struct Hello {
  uint32_t rank, world;
};
std::optional<Hello> parse_hello(const uint8_t* bytes);  // kHelloBytes; nullopt: not a gfwa peer
// "" when rank 0 of `world` ranks, `served` of them done, hands this peer the blob; else the refusal.
std::string hello_problem(const Hello& hello, int world, const std::vector<bool>& served);
struct ReplyHeader {
  uint32_t status, world, length;
};
ReplyHeader parse_reply_header(const uint8_t* bytes);  // kReplyHeaderBytes

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
