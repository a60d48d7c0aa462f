#include "dist/tcp_exchange.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "dist/dist_error.h"
#include "dist/exchange_text.h"
#include "dist/wire.h"

namespace gfwa::dist {
namespace {

// hello (peer -> rank 0): magic, rank, world. reply: status, rank 0's world, length, blob or message.
// ack (peer -> rank 0): one byte, so rank 0 counts only peers that really hold the blob.
constexpr char kMagic[8] = {'G', 'F', 'W', 'A', 'I', 'D', 'T', '1'};
constexpr uint32_t kOk = 0, kRefused = 1;
constexpr uint8_t kAck = 'A';
// A connection that sends no hello within this time is not one of ours; it must not stall the rest.
constexpr auto kPeerLimit = std::chrono::seconds(10);
constexpr auto kRetryPause = std::chrono::milliseconds(50);

std::vector<uint8_t> reply(uint32_t status, uint32_t world, const uint8_t* data, size_t n) {
  std::vector<uint8_t> out;
  wire::put_u32(out, status);
  wire::put_u32(out, world);
  wire::put_u32(out, uint32_t(n));
  out.insert(out.end(), data, data + n);
  return out;
}

}  // namespace

std::optional<Hello> parse_hello(const uint8_t* bytes) {
  if (std::memcmp(bytes, kMagic, 8) != 0) return std::nullopt;
  return Hello{wire::get_u32(bytes + 8), wire::get_u32(bytes + 12)};
}

std::string hello_problem(const Hello& h, int world, const std::vector<bool>& served) {
  if (h.world != uint32_t(world)) return world_mismatch_text(int(h.rank), int(h.world), world);
  if (h.rank == 0 || h.rank >= h.world)
    return "a peer reports rank " + std::to_string(h.rank) + ", outside 1.." + std::to_string(world - 1);
  if (served[h.rank]) return "rank " + std::to_string(h.rank) + " connected twice (two processes with the same rank?)";
  return "";
}

ReplyHeader parse_reply_header(const uint8_t* bytes) {
  return {wire::get_u32(bytes), wire::get_u32(bytes + 4), wire::get_u32(bytes + 8)};
}

TcpIdServer::TcpIdServer(int port, int world) : listener_(listen_any(port, 128)), world_(world) {
  port_ = bound_port(listener_);
}

void TcpIdServer::serve(const std::vector<uint8_t>& blob, std::chrono::milliseconds timeout) {
  if (blob.size() > wire::kMaxBlobBytes) throw DistError("id exchange: blob of " + std::to_string(blob.size()) + " bytes is too large");
  const auto deadline = Clock::now() + timeout;
  std::vector<bool> served(size_t(world_), false);
  served[0] = true;
  int left = world_ - 1;
  while (left > 0) {
    const Fd c = accept_before(listener_, deadline);
    if (!c) {
      std::vector<int> missing;
      for (int r = 1; r < world_; ++r)
        if (!served[size_t(r)]) missing.push_back(r);
      throw DistError("rank 0: " + ranks_text(missing) + " did not connect to port " + std::to_string(port_) +
                      " within " + seconds_text(timeout) + " (not started, or MASTER_ADDR does not reach this host?)");
    }
    const auto peer_deadline = std::min<Clock::time_point>(deadline, Clock::now() + kPeerLimit);
    uint8_t bytes[kHelloBytes];
    if (recv_all(c, bytes, kHelloBytes, peer_deadline) != Io::ok) continue;
    const std::optional<Hello> hello = parse_hello(bytes);
    if (!hello) continue;
    const uint32_t rank = hello->rank;
    const std::string problem = hello_problem(*hello, world_, served);
    if (!problem.empty()) {
      const auto msg = reply(kRefused, uint32_t(world_), reinterpret_cast<const uint8_t*>(problem.data()), problem.size());
      send_all(c, msg.data(), msg.size(), peer_deadline);
      throw DistError("rank 0: " + problem);
    }
    const auto msg = reply(kOk, uint32_t(world_), blob.data(), blob.size());
    uint8_t ack = 0;
    if (send_all(c, msg.data(), msg.size(), peer_deadline) == Io::ok && recv_all(c, &ack, 1, peer_deadline) == Io::ok &&
        ack == kAck) {
      served[rank] = true;
      --left;
    }
  }
}

std::vector<uint8_t> tcp_fetch_id(const std::string& host, int port, int rank, int world,
                                  std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string where = host + ":" + std::to_string(port);
  std::vector<uint8_t> hello(kMagic, kMagic + 8);
  wire::put_u32(hello, uint32_t(rank));
  wire::put_u32(hello, uint32_t(world));
  std::string why = "no connection";
  for (;;) {
    if (const Fd c = try_connect(host, port, deadline, &why)) {
      uint8_t head[kReplyHeaderBytes];
      if (send_all(c, hello.data(), hello.size(), deadline) == Io::ok &&
          recv_all(c, head, kReplyHeaderBytes, deadline) == Io::ok) {
        const ReplyHeader h = parse_reply_header(head);
        const uint32_t status = h.status, n = h.length;
        if (n > wire::kMaxBlobBytes) throw DistError("rank " + std::to_string(rank) + ": " + where + " is not a gfwa rank 0");
        std::vector<uint8_t> body(n);
        if (recv_all(c, body.data(), n, deadline) == Io::ok) {
          if (status == kRefused)
            throw DistError("rank " + std::to_string(rank) + ": rank 0 at " + where + " refused it: " +
                            std::string(body.begin(), body.end()));
          if (status != kOk) throw DistError("rank " + std::to_string(rank) + ": " + where + " is not a gfwa rank 0");
          if (send_all(c, &kAck, 1, deadline) == Io::ok) return body;
        }
      }
      why = "connection closed before the id arrived";
    }
    const auto now = Clock::now();
    if (now >= deadline) break;
    std::this_thread::sleep_for(std::min<Clock::duration>(kRetryPause, deadline - now));
  }
  throw DistError("rank " + std::to_string(rank) + ": no answer from rank 0 at " + where + " within " +
                  seconds_text(timeout) + " (" + why + ")");
}

}  // namespace gfwa::dist
