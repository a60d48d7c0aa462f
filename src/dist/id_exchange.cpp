#include "dist/id_exchange.h"

#include <chrono>

#include "dist/dist_error.h"
#include "dist/file_exchange.h"
#include "dist/tcp_exchange.h"

namespace gfwa::dist {

std::vector<uint8_t> exchange_id(const DistEnv& env, const DistributedConfig& cfg, const std::vector<uint8_t>& blob) {
  if (env.world == 1) return blob;
  if (cfg.timeout_s <= 0)
    throw DistError("distributed.timeout_s = " + std::to_string(cfg.timeout_s) + ": must be positive");
  const std::chrono::milliseconds timeout = std::chrono::seconds(cfg.timeout_s);
  if (cfg.id_exchange == "file") return file_exchange_id(env, cfg.id_file, blob, timeout);
  if (cfg.id_exchange != "tcp")
    throw DistError("distributed.id_exchange = '" + cfg.id_exchange + "': expected tcp or file");
  if (env.rank != 0) return tcp_fetch_id(env.master_addr, env.master_port, env.rank, env.world, timeout);
  TcpIdServer server(env.master_port, env.world);
  server.serve(blob, timeout);
  return blob;
}

}  // namespace gfwa::dist
