#include "train/optimizer_shards.h"

#include <algorithm>

namespace rlaif {
namespace {

std::string state_key(const torch::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

}  // namespace

OptimizerShards::OptimizerShards(Dist& dist, const std::vector<torch::Tensor>& params, torch::optim::Optimizer& opt)
    : dist_(dist), params_(params), opt_(opt), owner_(params.size(), 0) {
  // Largest tensors first, each to the rank holding the fewest elements so far (ties: the lower rank).
  std::vector<size_t> order(params_.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return params_[a].numel() > params_[b].numel(); });
  std::vector<int64_t> load(dist_.world_size(), 0);
  for (size_t k : order) {
    const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner_[k] = r;
    load[r] += params_[k].numel();
  }
}

void OptimizerShards::drop_foreign_gradients() {
  for (size_t k = 0; k < params_.size(); ++k)
    if (owner_[k] != dist_.rank()) params_[k].mutable_grad().reset();
}

void OptimizerShards::share_updated() {
  torch::NoGradGuard no_grad;
  for (int r = 0; r < dist_.world_size(); ++r) {  // one flat buffer per owner
    std::vector<size_t> mine;
    int64_t numel = 0;
    for (size_t k = 0; k < params_.size(); ++k)
      if (owner_[k] == r) mine.push_back(k), numel += params_[k].numel();
    if (mine.empty()) continue;
    torch::Tensor flat;  // [numel]
    if (r == dist_.rank()) {
      std::vector<torch::Tensor> parts;
      for (size_t k : mine) parts.push_back(params_[k].detach().reshape({-1}));
      flat = torch::cat(parts);
    } else {
      flat = torch::empty({numel}, params_[mine[0]].options());
    }
    dist_.broadcast(flat, r);
    if (r == dist_.rank()) continue;
    int64_t at = 0;
    for (size_t k : mine) {
      params_[k].detach().copy_(flat.narrow(0, at, params_[k].numel()).view(params_[k].sizes()));
      at += params_[k].numel();
    }
  }
}

void OptimizerShards::gather_state() {
  auto& st = opt_.state();
  for (size_t k = 0; k < params_.size(); ++k) {
    const int r = owner_[k];
    auto it = st.find(state_key(params_[k]));
    // The owner says whether the tensor has moments yet (no update so far: none).
    auto has = torch::full({1}, r == dist_.rank() && it != st.end() ? 1.0 : 0.0, torch::kFloat64);
    dist_.broadcast(has, r);
    if (has.item<double>() == 0) continue;
    torch::Tensor m, v, step = torch::zeros({1}, torch::kFloat64);
    if (r == dist_.rank()) {
      auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
      m = s.exp_avg(), v = s.exp_avg_sq();
      step.fill_(static_cast<double>(s.step()));
    } else {
      m = torch::empty_like(params_[k]), v = torch::empty_like(params_[k]);
    }
    dist_.broadcast(m, r);
    dist_.broadcast(v, r);
    dist_.broadcast(step, r);
    if (r == dist_.rank()) continue;
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(static_cast<int64_t>(step.item<double>()));
    s->exp_avg(m);
    s->exp_avg_sq(v);
    st[state_key(params_[k])] = std::move(s);
  }
}

void OptimizerShards::drop_foreign_state() {
  auto& st = opt_.state();
  for (size_t k = 0; k < params_.size(); ++k)
    if (owner_[k] != dist_.rank()) st.erase(state_key(params_[k]));
}

}  // namespace rlaif
