// The rank id exchange's messages (they come from other machines): the id file of the file
// exchange, and the tcp exchange's hello and reply header. A decoded id file encodes back to the
// same bytes; a hello is judged without reading outside the served-ranks table.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "dist/file_exchange.h"
#include "dist/tcp_exchange.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gfwa::dist;
  const std::vector<uint8_t> bytes(data, data + size);
  if (const auto f = decode_id_file(bytes))
    if (encode_id_file(*f) != bytes) __builtin_trap();
  if (size >= kHelloBytes) {
    if (const auto h = parse_hello(data)) {
      const int world = 1 + int(data[size - 1] % 8);
      std::vector<bool> served(size_t(world), false);
      served[0] = true;
      (void)hello_problem(*h, world, served);
    }
  }
  if (size >= kReplyHeaderBytes) (void)parse_reply_header(data);
  return 0;
}
