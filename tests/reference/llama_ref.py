#!/usr/bin/env python3
"""Independent reference for rlaif's transformer: a plain PyTorch llama/mistral/qwen2/qwen3 written from the
transformers formulas, reading and writing safetensors by hand (struct + json), so nothing is shared with the C++ code.

  llama_ref.py logits MODEL_DIR IDS_JSON OUT_JSON [ADAPTER_DIR]
      # MODEL_DIR: model.safetensors or shards with model.safetensors.index.json. IDS_JSON: [[ids of row 0], ...]; OUT_JSON: logits [rows][T][V]. ADAPTER_DIR: a PEFT LoRA folder, applied as
      # PEFT's LoRA layer does: y = W x + b + (lora_alpha / r) B A x (rsLoRA: lora_alpha / sqrt(r)).
  llama_ref.py write MODEL_DIR ARCH SEED DTYPE      # writes a random model folder (config.json + model.safetensors)
"""
import json
import math
import os
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:end]), dtype=DTYPES[e["dtype"]]) if end > b else torch.zeros(0)
        out[name] = t.reshape(e["shape"]).to(torch.float32)
    return out


def write_safetensors(path, tensors, dtype):
    name_of = {v: k for k, v in DTYPES.items()}
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name].to(dtype).contiguous()
        raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": name_of[dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def inv_freq(cfg):
    d = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    base = cfg.get("rope_theta", 10000.0)
    freqs = [1.0 / (base ** (2 * i / d)) for i in range(d // 2)]
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        out = []
        for f in freqs:
            wavelen = 2 * math.pi / f
            if wavelen < old / hi:
                out.append(f)
            elif wavelen > old / lo:
                out.append(f / factor)
            else:
                s = (old / wavelen - lo) / (hi - lo)
                out.append((1 - s) * f / factor + s * f)
        freqs = out
    return torch.tensor(freqs, dtype=torch.float64)


def rms(x, w, eps):
    return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


def rotate(x, pos, inv):  # x [T, heads, D], rotate pairs (i, i + D/2) by angle pos * inv[i]
    ang = pos[:, None].double() * inv[None, :]  # [T, D/2]
    c, s = torch.cos(ang).float()[:, None, :], torch.sin(ang).float()[:, None, :]
    h = x.shape[-1] // 2
    a, b = x[..., :h], x[..., h:]
    return torch.cat([a * c - b * s, b * c + a * s], -1)


def load_adapter(adapter_dir):
    if not adapter_dir:
        return {}, 0.0
    acfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
    r = acfg["r"]
    scale = acfg["lora_alpha"] / (math.sqrt(r) if acfg.get("use_rslora") else r)
    return load_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors")), scale


def load_weights(model_dir):
    """model.safetensors, or every shard that model.safetensors.index.json's weight_map names."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if not os.path.exists(index):
        return load_safetensors(os.path.join(model_dir, "model.safetensors"))
    w = {}
    for shard in sorted(set(json.load(open(index))["weight_map"].values())):
        w.update(load_safetensors(os.path.join(model_dir, shard)))
    return w


def logits(model_dir, ids, adapter_dir=None):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = load_weights(model_dir)
    lora, scale = load_adapter(adapter_dir)
    mt = cfg["model_type"]
    H = cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads") or H
    D = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps = cfg.get("rms_norm_eps", 1e-6)
    inv = inv_freq(cfg)
    T = len(ids)
    pos = torch.arange(T)
    x = w["model.embed_tokens.weight"][torch.tensor(ids)]
    def lin(name, h):
        y = h @ w[name + ".weight"].T
        a = "base_model.model." + name + ".lora_A.weight"
        if a in lora:
            y = y + scale * (h @ lora[a].T) @ lora["base_model.model." + name + ".lora_B.weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, w[p + "input_layernorm.weight"], eps)
        q = lin(p + "self_attn.q_proj", h).view(T, H, D)
        k = lin(p + "self_attn.k_proj", h).view(T, Hkv, D)
        v = lin(p + "self_attn.v_proj", h).view(T, Hkv, D)
        if mt == "qwen3":
            q = rms(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = rotate(q, pos, inv), rotate(k, pos, inv)
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
        out = torch.zeros(T, H, D)
        for hd in range(H):
            s = (q[:, hd] @ k[:, hd].T) / math.sqrt(D)
            s = s.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
            out[:, hd] = torch.softmax(s, -1) @ v[:, hd]
        x = x + lin(p + "self_attn.o_proj", out.reshape(T, H * D))
        h = rms(x, w[p + "post_attention_layernorm.weight"], eps)
        g = lin(p + "mlp.gate_proj", h)
        x = x + lin(p + "mlp.down_proj", g * torch.sigmoid(g) * lin(p + "mlp.up_proj", h))
    x = rms(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


def write(model_dir, arch, seed, dtype):
    torch.manual_seed(seed)
    C, L, H, Hkv, I, V = 48, 2, 6, 2, 96, 300
    D = C // H
    cfg = {"model_type": arch, "hidden_size": C, "num_hidden_layers": L, "num_attention_heads": H,
           "num_key_value_heads": Hkv, "intermediate_size": I, "vocab_size": V, "rms_norm_eps": 1e-5,
           "rope_theta": 5000.0, "max_position_embeddings": 256, "tie_word_embeddings": False,
           "hidden_act": "silu", "eos_token_id": 2, "bos_token_id": 1}
    t = {"model.embed_tokens.weight": torch.randn(V, C) * 0.5, "model.norm.weight": 1 + 0.1 * torch.randn(C),
         "lm_head.weight": torch.randn(V, C) * 0.1}
    for i in range(L):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(C)
        t[p + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(C)
        for n, (o, ii) in {"q_proj": (H * D, C), "k_proj": (Hkv * D, C), "v_proj": (Hkv * D, C),
                           "o_proj": (C, H * D)}.items():
            t[p + "self_attn." + n + ".weight"] = torch.randn(o, ii) * 0.2
            if arch == "qwen2" and n != "o_proj":
                t[p + "self_attn." + n + ".bias"] = torch.randn(o) * 0.2
        if arch == "qwen3":
            t[p + "self_attn.q_norm.weight"] = 1 + 0.1 * torch.randn(D)
            t[p + "self_attn.k_norm.weight"] = 1 + 0.1 * torch.randn(D)
        t[p + "mlp.gate_proj.weight"] = torch.randn(I, C) * 0.2
        t[p + "mlp.up_proj.weight"] = torch.randn(I, C) * 0.2
        t[p + "mlp.down_proj.weight"] = torch.randn(C, I) * 0.2
    os.makedirs(model_dir, exist_ok=True)
    json.dump(cfg, open(os.path.join(model_dir, "config.json"), "w"))
    write_safetensors(os.path.join(model_dir, "model.safetensors"), t, DTYPES[dtype])


if __name__ == "__main__":
    if sys.argv[1] == "logits":
        rows = json.load(open(sys.argv[3]))
        adapter = sys.argv[5] if len(sys.argv) > 5 else None
        out = [logits(sys.argv[2], r, adapter).tolist() for r in rows]
        json.dump(out, open(sys.argv[4], "w"))
    elif sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit("usage: see the docstring")
