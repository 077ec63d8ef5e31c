#include "rlaif/model.h"

namespace rlaif {

KVCache::KVCache(const ModelConfig& c, int64_t slots, int64_t max_len, torch::ScalarType dtype)
    : slots_(slots), max_len_(max_len) {
  auto opts = torch::TensorOptions().dtype(dtype);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    k_.push_back(torch::zeros({slots, c.num_key_value_heads, max_len, c.head_dim}, opts));
    v_.push_back(torch::zeros({slots, c.num_key_value_heads, max_len, c.head_dim}, opts));
  }
}

void KVCache::grow(int64_t max_len) {
  if (max_len <= max_len_) return;
  for (auto* list : {&k_, &v_})
    for (auto& t : *list) {
      auto sizes = t.sizes().vec();  // [S, Hkv, Tmax, D]
      sizes[2] = max_len;
      auto bigger = torch::zeros(sizes, t.options());
      bigger.narrow(2, 0, max_len_).copy_(t);
      t = bigger;
    }
  max_len_ = max_len;
}

void KVCache::copy_slot(int64_t from, int64_t to, int64_t len) {
  if (from == to || len == 0) return;
  for (size_t i = 0; i < k_.size(); ++i) {
    k_[i][to].narrow(1, 0, len).copy_(k_[i][from].narrow(1, 0, len));
    v_[i][to].narrow(1, 0, len).copy_(v_[i][from].narrow(1, 0, len));
  }
}

}  // namespace rlaif
