#!/usr/bin/env python3
"""The eager PyTorch baseline for bench/bench_train: the same GRPO update (forward, log-probs of the completion tokens,
DAPO-normalised clipped loss with beta = 0, backward, AdamW) on the same SmolLM2-135M-shaped llama, written the way one
writes it fast in plain PyTorch: batched nn.Linear projections, F.scaled_dot_product_attention with a causal+padding
mask, logits only at completion positions, log_softmax + gather. Prints one table row like bench_train.

  /usr/bin/python3 bench/train_step_ref.py MODEL_DIR [--lora R] [--bf16] [--micro 16] [--steps 2] [--threads 2]
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "reference"))
from llama_ref import inv_freq, load_safetensors  # noqa: E402  (weights reading and rope frequencies only)


class Lora(torch.nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.scale = base, alpha / r
        self.A = torch.nn.Parameter(torch.empty(r, base.in_features).uniform_(-1 / math.sqrt(base.in_features), 1 / math.sqrt(base.in_features)))
        self.B = torch.nn.Parameter(torch.zeros(base.out_features, r))

    def forward(self, x):
        return self.base(x) + (x @ self.A.T) @ self.B.T * self.scale


class Llama(torch.nn.Module):
    def __init__(self, cfg, w):
        super().__init__()
        C, self.H = cfg["hidden_size"], cfg["num_attention_heads"]
        self.Hkv = cfg.get("num_key_value_heads") or self.H
        self.D = cfg.get("head_dim") or C // self.H
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.embed = torch.nn.Embedding.from_pretrained(w["model.embed_tokens.weight"], freeze=False)
        self.layers = torch.nn.ModuleList()
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            L = torch.nn.Module()
            for name in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]:
                W = w[p + name + ".weight"]
                lin = torch.nn.Linear(W.shape[1], W.shape[0], bias=False)
                lin.weight.data.copy_(W)
                setattr(L, name.split(".")[1], lin)
            L.n1 = torch.nn.Parameter(w[p + "input_layernorm.weight"].clone())
            L.n2 = torch.nn.Parameter(w[p + "post_attention_layernorm.weight"].clone())
            self.layers.append(L)
        self.norm = torch.nn.Parameter(w["model.norm.weight"].clone())
        self.inv = inv_freq(cfg).float()

    def rms(self, x, wt):
        h = x.float()
        return wt * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)

    def rope(self, x, cos, sin):
        x1, x2 = x[..., : self.D // 2], x[..., self.D // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def hidden(self, ids, mask):
        N, T = ids.shape
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        ang = pos[..., None].float() * self.inv
        emb = torch.cat([ang, ang], -1)
        cos, sin = emb.cos()[:, None], emb.sin()[:, None]                      # [N, 1, T, D]
        allowed = torch.ones(T, T, dtype=torch.bool).tril()[None] & mask.bool()[:, None, :]
        attn_mask = allowed[:, None]                                           # [N, 1, T, T]
        x = self.embed(ids)
        for L in self.layers:
            h = self.rms(x, L.n1)
            q = L.q_proj(h).view(N, T, self.H, self.D).transpose(1, 2)
            k = L.k_proj(h).view(N, T, self.Hkv, self.D).transpose(1, 2)
            v = L.v_proj(h).view(N, T, self.Hkv, self.D).transpose(1, 2)
            q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
            k = k.repeat_interleave(self.H // self.Hkv, 1)
            v = v.repeat_interleave(self.H // self.Hkv, 1)
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask) if hasattr(F, "scaled_dot_product_attention") \
                else torch.softmax((q @ k.transpose(-1, -2) / math.sqrt(self.D)).masked_fill(~attn_mask, float("-inf")), -1) @ v
            x = x + L.o_proj(o.transpose(1, 2).reshape(N, T, -1))
            h = self.rms(x, L.n2)
            x = x + L.down_proj(F.silu(L.gate_proj(h)) * L.up_proj(h))
        return self.rms(x, self.norm)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--lora", type=int, default=0)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--completion-tokens", type=int, default=128)
    ap.add_argument("--micro", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    model = Llama(cfg, load_safetensors(os.path.join(a.model, "model.safetensors")))
    params = sum(p.numel() for p in model.parameters())
    flops_per_token = 6.0 * params
    if a.lora:
        for p in model.parameters():
            p.requires_grad_(False)
        for L in model.layers:
            for name in ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]:
                setattr(L, name, Lora(getattr(L, name), a.lora, 2 * a.lora))
        trainable = [p for p in model.parameters() if p.requires_grad]
        flops_per_token = 4.0 * params + 6.0 * sum(p.numel() for p in trainable)
    else:
        trainable = list(model.parameters())
    opt = torch.optim.AdamW(trainable, lr=1e-6)
    N, P, Tc, V = a.prompts * a.generations, a.prompt_tokens, a.completion_tokens, cfg["vocab_size"]
    ids = torch.cat([torch.randint(0, V, (N, P)), torch.randint(0, V, (N, Tc))], 1)
    mask = torch.ones(N, P + Tc, dtype=torch.long)
    adv = torch.randn(N)
    best = float("inf")
    for s in range(a.steps + 1):
        t = time.time()
        for m in range(0, N, a.micro):
            b = ids[m:m + a.micro]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                h = model.hidden(b, mask[m:m + a.micro])[:, P - 1:P - 1 + Tc]
                logits = h @ model.embed.weight.T
            logp = torch.log_softmax(logits.float(), -1).gather(-1, b[:, P:, None]).squeeze(-1)
            ratio = torch.exp(logp - logp.detach())
            A = adv[m:m + a.micro, None]
            per_token = -torch.min(ratio * A, torch.clamp(ratio, 0.8, 1.2) * A)
            (per_token.sum() / (N * Tc)).backward()
        opt.step()
        opt.zero_grad()
        if s > 0:
            best = min(best, time.time() - t)
    tokens = N * (P + Tc)

    def peak(dt):
        x, y = torch.randn(2048, 2048).to(dt), torch.randn(2048, 2048).to(dt)
        x @ y
        r = 0
        for _ in range(5):
            t = time.time()
            x @ y
            r = max(r, 2 * 2048 ** 3 / (time.time() - t) / 1e9)
        return r

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    p32, p16 = peak(torch.float32), peak(torch.bfloat16)
    achieved = flops_per_token * tokens / best / 1e9
    pk = p16 if a.bf16 else p32
    print("| eager PyTorch %-4s %-4s | %6.1f s | %7.1f | %7.0f MiB | %6.1f GFLOP/s | %5.1f%% of %s peak (%.0f) | fp32 peak %.0f, bf16 peak %.0f |" % (
        "LoRA" if a.lora else "full", "bf16" if a.bf16 else "fp32", best, tokens / best, rss, achieved, 100 * achieved / pk,
        "bf16" if a.bf16 else "fp32", pk, p32, p16))


main()
