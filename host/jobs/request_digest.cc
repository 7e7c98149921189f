#include "host/jobs/request_digest.h"

#include <sodium.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace wafer::host {
namespace {

class Hasher {
 public:
  Hasher() { crypto_generichash_init(&state_, nullptr, 0, kBytes); }
  void Bytes(const void* data, size_t size) {
    const uint64_t n = size;
    crypto_generichash_update(&state_, reinterpret_cast<const unsigned char*>(&n), sizeof(n));
    crypto_generichash_update(&state_, static_cast<const unsigned char*>(data), size);
  }
  void Text(const std::string& s) { Bytes(s.data(), s.size()); }
  void Ids(const std::vector<uint32_t>& ids) { Bytes(ids.data(), ids.size() * sizeof(uint32_t)); }
  template <typename T>
  void Value(T v) {
    Bytes(&v, sizeof(v));
  }
  std::string Final() {
    std::string out(kBytes, '\0');
    crypto_generichash_final(&state_, reinterpret_cast<unsigned char*>(out.data()), kBytes);
    return out;
  }

 private:
  static constexpr size_t kBytes = 16;
  crypto_generichash_state state_;
};

}  // namespace

std::string RequestDigestOf(const SubmitJob& s) {
  Hasher h;
  h.Text(s.model);
  h.Text(s.prompt_text);
  h.Ids(s.prompt_tokens);
  h.Value(s.max_tokens);
  h.Value(s.sampling.temperature);
  h.Value(s.sampling.top_k);
  h.Value(s.sampling.top_p);
  h.Value(s.sampling.seed);
  h.Ids(s.stop_tokens);
  h.Value(static_cast<uint8_t>(s.want_text ? 1 : 0));
  return h.Final();
}

}  // namespace wafer::host
