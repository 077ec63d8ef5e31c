// A frozen projection with LoRA adapters as one autograd node (declared in train_ops.h). Built from libtorch's
// matmuls; what it saves over the same formula in autograd ops is the glue: no gradient of x summed from one
// branch per adapter, one product x A^T and one (x A^T) B^T for all adapters of a fused projection, weight
// gradients of B only for each adapter's own block, and dropout masks replayed from a seed instead of stored.
#include "model/train_ops.h"

#include <algorithm>

namespace rlaif {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What the node needs that is not trained: the frozen weight and bias and each adapter's settings.
struct LoraFrozen {
  torch::Tensor weight, bias;  // [out, in], [out] or undefined; in the compute dtype
  std::vector<double> scale, dropout;
  std::vector<int64_t> col;
  at::ScalarType compute;
};

class LoraLinear : public torch::autograd::Function<LoraLinear> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, at::TensorList As, at::TensorList Bs,
                               const LoraFrozen& f) {
    const auto c = f.compute;
    const int64_t P = static_cast<int64_t>(As.size());
    auto xc = x.to(c).contiguous();                                                                    // [M, in]
    auto y = f.bias.defined() ? torch::addmm(f.bias, xc, f.weight.t()) : torch::mm(xc, f.weight.t());  // [M, out]
    const int64_t out = y.size(1);
    bool any_dropout = false;
    int64_t R = 0;
    std::vector<torch::Tensor> a_c;
    for (int64_t p = 0; p < P; ++p) {
      a_c.push_back(As[p].to(c));
      R += As[p].size(0);
      any_dropout = any_dropout || f.dropout[p] > 0;
    }
    auto a_cat = P == 1 ? a_c[0] : torch::cat(a_c);  // [R, in]
    // B's as one block-diagonal [out, R] (scale folded in): one addmm for all adapters, cheaper than one per
    // column range (a product into a strided slice of y goes through a copy).
    auto b_blk = torch::zeros({out, R}, xc.options());
    std::vector<int64_t> seeds(P, 0);
    torch::Tensor u;  // [M, R]: drop_p(x) A_p^T side by side
    if (!any_dropout) {
      u = torch::mm(xc, a_cat.t());
    } else {
      std::vector<torch::Tensor> parts;
      for (int64_t p = 0; p < P; ++p) {
        if (f.dropout[p] > 0) seeds[p] = static_cast<int64_t>(draw_dropout_seed());
        auto xin = f.dropout[p] > 0 ? dropout_with_seed(xc, static_cast<uint64_t>(seeds[p]), f.dropout[p]) : xc;
        parts.push_back(torch::mm(xin, a_c[p].t()));  // [M, r_p]
      }
      u = torch::cat(parts, 1);
    }
    for (int64_t p = 0, off = 0; p < P; off += As[p].size(0), ++p) {  // (forward runs without grad mode)
      b_blk.narrow(0, f.col[p], Bs[p].size(0)).narrow(1, off, As[p].size(0)).copy_(Bs[p] * f.scale[p]);
    }
    y.addmm_(u, b_blk.t());
    std::vector<torch::Tensor> keep = {xc, u, a_cat, b_blk};  // then A_p and B_p: their sizes and dtypes
    keep.insert(keep.end(), As.begin(), As.end());
    keep.insert(keep.end(), Bs.begin(), Bs.end());
    ctx->save_for_backward(keep);
    ctx->saved_data["weight"] = f.weight;
    ctx->saved_data["scale"] = f.scale;
    ctx->saved_data["dropout"] = f.dropout;
    ctx->saved_data["col"] = f.col;
    ctx->saved_data["seeds"] = seeds;
    ctx->saved_data["x_dtype"] = static_cast<int64_t>(x.scalar_type());
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &xc = saved[0], &u = saved[1], &a_cat = saved[2], &b_blk = saved[3];
    const auto weight = ctx->saved_data["weight"].toTensor();
    const auto scale = ctx->saved_data["scale"].toDoubleVector();
    const auto dropout = ctx->saved_data["dropout"].toDoubleVector();
    const auto col = ctx->saved_data["col"].toIntVector();
    const auto seeds = ctx->saved_data["seeds"].toIntVector();
    const int64_t P = static_cast<int64_t>(scale.size());
    auto A = [&](int64_t p) -> const torch::Tensor& { return saved[4 + p]; };      // [r_p, in]
    auto B = [&](int64_t p) -> const torch::Tensor& { return saved[4 + P + p]; };  // [out_p, r_p]
    const bool any_dropout = std::any_of(dropout.begin(), dropout.end(), [](double d) { return d > 0; });
    auto dy = grads[0].to(xc.scalar_type()).contiguous();  // [M, out]
    const bool want_dx = ctx->needs_input_grad(0);
    torch::Tensor dx = want_dx ? torch::mm(dy, weight) : torch::Tensor();  // [M, in]
    auto du = torch::mm(dy, b_blk);                                        // [M, R]: scale_p dy_p B_p side by side
    variable_list out(1 + 2 * P + 1);
    if (!any_dropout) {
      if (want_dx) dx.addmm_(du, a_cat);
      auto da = torch::mm(du.t(), xc);  // [R, in]
      for (int64_t p = 0, off = 0; p < P; off += A(p).size(0), ++p)
        out[1 + p] = da.narrow(0, off, A(p).size(0)).to(A(p).scalar_type());
    } else {
      for (int64_t p = 0, off = 0; p < P; off += A(p).size(0), ++p) {
        auto du_p = du.narrow(1, off, A(p).size(0));    // [M, r_p]
        auto a_p = a_cat.narrow(0, off, A(p).size(0));  // [r_p, in], in the compute dtype
        const auto seed = static_cast<uint64_t>(seeds[p]);
        auto xin = dropout[p] > 0 ? dropout_with_seed(xc, seed, dropout[p]) : xc;
        out[1 + p] = torch::mm(du_p.t(), xin).to(A(p).scalar_type());
        if (!want_dx) continue;
        if (dropout[p] > 0)
          dropout_with_seed_add_(dx, torch::mm(du_p, a_p), seed, dropout[p]);
        else
          dx.addmm_(du_p, a_p);
      }
    }
    for (int64_t p = 0, off = 0; p < P; off += A(p).size(0), ++p)  // dB_p = scale_p dy_p^T u_p, its own block only
      out[1 + P + p] = torch::mm(dy.narrow(1, col[p], B(p).size(0)).t(), u.narrow(1, off, A(p).size(0)))
                           .mul_(scale[p])
                           .to(B(p).scalar_type());
    if (want_dx) out[0] = dx.to(static_cast<at::ScalarType>(ctx->saved_data["x_dtype"].toInt()));
    return out;
  }
};

}  // namespace

torch::Tensor lora_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                          const std::vector<LoraPart>& parts, at::ScalarType compute) {
  TORCH_CHECK(
      x.dim() == 2 && weight.dim() == 2 && x.size(1) == weight.size(1) && !parts.empty() &&
          weight.scalar_type() == compute && !weight.requires_grad() &&
          (!bias.defined() || (bias.scalar_type() == compute && !bias.requires_grad())),
      "lora_linear: x [M, in], a frozen weight [out, in] (and bias) in the compute dtype, at least one adapter");
  LoraFrozen f{weight, bias, {}, {}, {}, compute};
  std::vector<torch::Tensor> As, Bs;
  for (const auto& p : parts) {
    TORCH_CHECK(p.A.dim() == 2 && p.B.dim() == 2 && p.A.size(1) == x.size(1) && p.B.size(1) == p.A.size(0) &&
                    p.col >= 0 && p.col + p.B.size(0) <= weight.size(0) && p.dropout >= 0 && p.dropout < 1,
                "lora_linear: an adapter must be A [r, in] and B [out_p, r] inside the projection's output columns");
    As.push_back(p.A);
    Bs.push_back(p.B);
    f.scale.push_back(p.scale);
    f.dropout.push_back(p.dropout);
    f.col.push_back(p.col);
  }
  return LoraLinear::apply(x, at::TensorList(As), at::TensorList(Bs), f);
}

}  // namespace rlaif
