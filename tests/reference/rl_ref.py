#!/usr/bin/env python3
"""Independent reference for rlaif's RL math (src/rl/), written from the published formulas in plain PyTorch, in the
shape TRL's GRPOTrainer computes them. Reads a JSON case on argv[1], writes results as JSON to stdout (a list of cases gives a list of results).

Case: {"kind": "loss", "logp", "old_logp", "ref_logp", "sampler_logp", "entropy", "mask" ([N][T]), "advantages" ([N]),
       "options": {...}}  -> {"loss", "grad" (d loss / d logp, [N][T]), "kl", "clip_low", "clip_high", "clip_region"}
      {"kind": "advantages", "rewards", "valid" ([B][G]), "estimator", "scale_rewards"} -> {"advantages"}
      {"kind": "dpo", "logp_w", "logp_l", "ref_w", "ref_l", "beta"} -> {"loss", "grad_w", "grad_l"}
      {"kind": "logprobs", "logits" ([N][T][V]), "targets", "temperature"} -> {"logp", "entropy"}
"""
import json
import sys

import torch

torch.set_default_dtype(torch.float64)


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def loss_case(c):
    o = c["options"]
    logp = t(c["logp"]).requires_grad_(True)
    old, mask, adv = t(c["old_logp"]), t(c["mask"]), t(c["advantages"])
    log_ratio = logp - old
    if o["importance_sampling_level"] == "token":
        log_w = log_ratio
    else:  # GSPO: length-normalised sequence log-ratio
        log_w = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    coef_1 = torch.exp(log_w)
    coef_2 = torch.clamp(coef_1, 1 - o["epsilon"], 1 + o["epsilon_high"])
    l1 = coef_1 * adv.unsqueeze(1)
    l2 = coef_2 * adv.unsqueeze(1)
    per_token = -torch.min(l1, l2)
    kl = None
    if "ref_logp" in c:
        ref = t(c["ref_logp"])
        x = ref - logp
        kl = {"k1": -x, "k2": 0.5 * x ** 2, "k3": torch.exp(x) - x - 1}[o["kl_estimator"]]
        if o["beta"] != 0:
            per_token = per_token + o["beta"] * kl
    if "entropy" in c and o["entropy_coef"] != 0:
        per_token = per_token - o["entropy_coef"] * t(c["entropy"])
    if o["is_cap"] > 0:
        per_token = per_token * torch.clamp(torch.exp(old - t(c["sampler_logp"])), max=o["is_cap"])
    per_token = per_token.expand_as(mask)
    lt = o["loss_type"]
    if lt == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif lt == "bnpo":
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    elif lt == "dr_grpo":
        loss = (per_token * mask).sum() / (per_token.size(0) * o["max_completion_length"])
    else:  # dapo
        n = o["num_items"] if o["num_items"] > 0 else mask.sum().item()
        loss = (per_token * mask).sum() / n
    loss.backward()
    cw = coef_1.detach().expand_as(mask)
    a = adv.unsqueeze(1).expand_as(mask)
    low = ((cw < 1 - o["epsilon"]) & (a < 0)).double()
    high = ((cw > 1 + o["epsilon_high"]) & (a > 0)).double()
    mm = lambda v: ((v * mask).sum() / mask.sum()).item()
    return {"loss": loss.item(), "grad": logp.grad.tolist(), "kl": mm(kl.detach()) if kl is not None else 0.0,
            "clip_low": mm(low), "clip_high": mm(high), "clip_region": mm(torch.clamp(low + high, max=1))}


def advantages_case(c):
    r, v, est = t(c["rewards"]), torch.tensor(c["valid"]), c["estimator"]
    out = torch.zeros_like(r)
    groups = [r[b][v[b]] for b in range(r.size(0))]
    if est == "grpo":
        all_valid = r[v]
        for b, g in enumerate(groups):
            a = g - g.mean()
            if c["scale_rewards"] == "group":
                a = a / ((g.std() if g.numel() > 1 else torch.tensor(0.0)) + 1e-4)
            elif c["scale_rewards"] == "batch":
                a = a / (all_valid.std() + 1e-4)
            out[b][v[b]] = a
    elif est == "rloo":
        for b, g in enumerate(groups):
            n = g.numel()
            out[b][v[b]] = torch.stack([g[i] - (g.sum() - g[i]) / (n - 1) for i in range(n)]) if n > 1 else 0 * g
    else:
        xs = [g - g.mean() if est == "reinforce_pp_baseline" else g for g in groups]
        flat = torch.cat(xs)
        for b, x in enumerate(xs):
            out[b][v[b]] = (x - flat.mean()) / (flat.std() + 1e-8)
    return {"advantages": out.tolist()}


def dpo_case(c):
    w = t(c["logp_w"]).requires_grad_(True)
    l = t(c["logp_l"]).requires_grad_(True)
    logits = (w - t(c["ref_w"])) - (l - t(c["ref_l"]))
    loss = -torch.nn.functional.logsigmoid(c["beta"] * logits).mean()
    loss.backward()
    return {"loss": loss.item(), "grad_w": w.grad.tolist(), "grad_l": l.grad.tolist()}


def logprobs_case(c):
    z = t(c["logits"]) / c["temperature"]
    lsm = torch.log_softmax(z, -1)
    logp = lsm.gather(-1, torch.tensor(c["targets"], dtype=torch.int64).unsqueeze(-1)).squeeze(-1)
    ent = -(lsm.exp() * lsm).sum(-1)
    return {"logp": logp.tolist(), "entropy": ent.tolist()}


FUNCTIONS = {"loss": loss_case, "advantages": advantages_case, "dpo": dpo_case, "logprobs": logprobs_case}
cases = json.load(open(sys.argv[1]))
single = isinstance(cases, dict)
results = [FUNCTIONS[c["kind"]](c) for c in ([cases] if single else cases)]
json.dump(results[0] if single else results, sys.stdout)
