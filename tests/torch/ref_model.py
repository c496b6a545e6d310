#!/usr/bin/env python3
"""A PyTorch float64 re-implementation of dsk's model, to check the C one.

    ref_model.py DUMP_DIR [--steps N] [--mutate NAME] [--label TEXT] [--hf] [--expect-drops]

DUMP_DIR is what tests/tools/ref_dump wrote (config.json, model, batch,
out, after and generate .safetensors).  Everything here is computed in
float64 from the C model's own initial weights and batch, independently of
the C code: the only things taken from C are the inputs (weights, batch)
and the outputs under test.

Mixture-of-experts layers (DeepSeekMoE: routed top-k experts, shared
experts, capacity dropping, balancing losses; see moe_ffn) run in training
mode when out.safetensors' __metadata__ has moe_train 1 (ref_dump with
DSK_REF_TRAIN=1), else in inference mode (no capacity, no losses); the
generator check is in inference mode either way.  In training mode the
objective of the gradients and AdamW steps is the loss plus the balancing
losses, and the forward check also compares aux_loss and the C model's
selections and dropped pairs per layer; --expect-drops requires capacity
to have dropped some pair.

Prints one unnumbered TAP line per check group ("ok - NAME" or
"not ok - NAME"), each preceded by "#" lines with the observed errors;
tests/torch/run.sh numbers them.  Exit status 0 even when a check fails
(the TAP lines carry the verdict), non-zero only when the script itself
breaks.

--mutate NAME deliberately breaks one piece of this reference (see
MUTATIONS) so that run.sh can show the checks actually bite.

--hf (run.sh runs it with the Hugging Face venv's python) instead loads
DUMP_DIR with transformers' LlamaForCausalLM and compares its logits on batch
row 0 with the C logits.
"""
import argparse
import json
import math
import struct
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

# ---- safetensors ----------------------------------------------------------------------------

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U8": np.uint8, "BOOL": np.bool_,
}


def st_read(path):
    """Returns ({name: numpy array}, metadata dict) of a .safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} beyond the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = memoryview(raw)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dt = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if e - b != count * dt.itemsize or e > len(data):
            raise ValueError(f"{path}: {name}: data_offsets [{b}, {e}] do not fit shape {list(shape)}")
        out[name] = np.frombuffer(data[b:e], dtype=dt).reshape(shape).copy()
    return out, meta


def f64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


# ---- the model ----------------------------------------------------------------------------------

MUTATIONS = {
    "rope-adjacent": "RoPE rotates adjacent pairs (x[2i], x[2i+1]) instead of rotate-half",
    "no-doc-mask": "attention ignores document boundaries (pos restarts)",
    "window-off-by-one": "local attention sees W+1 keys instead of W",
    "alpha-swapped": "hybrid: alpha weighs the local softmax instead of the global one",
    "decay-all": "weight decay also on norms and hybrid_alpha",
    "no-bias-correction": "AdamW without bias correction",
    "softmax-renorm": "MoE softmax router: gates renormalised over the top k",
    "no-capacity": "MoE: no capacity dropping in training mode",
    "bias-in-gate": "MoE: e_score_correction_bias added to the gate weights too",
}


class Config:
    def __init__(self, path):
        with open(path) as f:
            c = json.load(f)
        self.raw = c
        self.V = c["vocab_size"]
        self.d = c["hidden_size"]
        self.F = c["intermediate_size"]
        self.L = c["num_hidden_layers"]
        self.H = c["num_attention_heads"]
        self.KV = c.get("num_key_value_heads") or self.H
        self.theta = float(c.get("rope_theta", 10000.0))
        self.eps = float(c.get("rms_norm_eps", 1e-5))
        self.tie = bool(c.get("tie_word_embeddings", False))
        self.pattern = c.get("dsk_attention_pattern") or "G"
        self.W = int(c.get("dsk_sliding_window") or 32)
        self.hd = self.d // self.H
        # Mixture of experts (keys written only for MoE models).
        self.E = int(c.get("n_routed_experts") or 0)
        self.shared = int(c.get("n_shared_experts") or 0)
        self.k = int(c.get("num_experts_per_tok") or 0)
        self.Fe = int(c.get("moe_intermediate_size") or 0)
        self.first_dense = int(c.get("first_k_dense_replace") or 0)
        self.router = c.get("scoring_func", "softmax")
        self.capacity_factor = float(c.get("dsk_capacity_factor") or 0)
        self.balance = c.get("dsk_balance", "none")
        self.aux_coef = float(c.get("aux_loss_alpha") or 0)
        self.seq_aux_coef = float(c.get("dsk_seq_aux_alpha") or 0)
        self.z_coef = float(c.get("dsk_router_z_loss") or 0)
        # dsk_router_noise is ignored: ref_dump runs without an rng, and
        # without one the C model adds no noise.

    def kind(self, l):
        return self.pattern[l % len(self.pattern)]

    def is_moe(self, l):
        return self.E > 0 and l >= self.first_dense


def tensor_names(cfg):
    """The parameter tensors in the C model's order (HF Llama names)."""
    names = ["model.embed_tokens.weight"]
    for l in range(cfg.L):
        p = f"model.layers.{l}."
        names += [p + "input_layernorm.weight"]
        names += [p + f"self_attn.{x}_proj.weight" for x in "qkvo"]
        if cfg.kind(l) == "H":
            names += [p + "self_attn.hybrid_alpha"]
        names += [p + "post_attention_layernorm.weight"]
        if not cfg.is_moe(l):
            names += [p + f"mlp.{x}_proj.weight" for x in ("gate", "up", "down")]
            continue
        # DeepSeek-V3's names: router, its selection bias (balance bias
        # only), each projection's experts back to back, shared experts.
        names += [p + "mlp.gate.weight"]
        if cfg.balance == "bias":
            names += [p + "mlp.gate.e_score_correction_bias"]
        names += [p + f"mlp.experts.{e}.{x}_proj.weight" for x in ("gate", "up", "down") for e in range(cfg.E)]
        if cfg.shared:
            names += [p + f"mlp.shared_experts.{x}_proj.weight" for x in ("gate", "up", "down")]
    names += ["model.norm.weight"]
    if not cfg.tie:
        names += ["lm_head.weight"]
    return names


def tensor_shapes(cfg):
    d, hd, F, V = cfg.d, cfg.hd, cfg.F, cfg.V
    shapes = {}
    Fe, Fs = cfg.Fe, cfg.shared * cfg.Fe
    for n in tensor_names(cfg):
        if ".mlp.experts." in n or ".mlp.shared_experts." in n:
            f = Fe if ".mlp.experts." in n else Fs
            shapes[n] = (d, f) if "down_proj" in n else (f, d)
        elif n.endswith("mlp.gate.weight"):
            shapes[n] = (cfg.E, d)
        elif n.endswith("e_score_correction_bias"):
            shapes[n] = (cfg.E,)
        elif n.endswith("hybrid_alpha"):
            shapes[n] = (1,)
        elif "norm" in n:
            shapes[n] = (d,)
        elif n.endswith(("embed_tokens.weight", "lm_head.weight")):
            shapes[n] = (V, d)
        elif "q_proj" in n:
            shapes[n] = (cfg.H * hd, d)
        elif "k_proj" in n or "v_proj" in n:
            shapes[n] = (cfg.KV * hd, d)
        elif "o_proj" in n:
            shapes[n] = (d, cfg.H * hd)
        elif "down_proj" in n:
            shapes[n] = (d, F)
        else:
            shapes[n] = (F, d)
    return shapes


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, cfg, mutate):
    """x [B, T, heads, hd]; Hugging Face's rotate-half with per-position angles."""
    hd = cfg.hd
    inv_freq = 1.0 / cfg.theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = pos.to(torch.float64)[..., None] * inv_freq          # [B, T, hd/2]
    cos, sin = ang.cos()[:, :, None, :], ang.sin()[:, :, None, :]
    if mutate == "rope-adjacent":
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack((a * cos - b * sin, b * cos + a * sin), -1).flatten(-2)
    a, b = x[..., :hd // 2], x[..., hd // 2:]
    return torch.cat((a * cos - b * sin, b * cos + a * sin), -1)


def masks(pos, cfg, mutate):
    """Boolean [B, 1, T, T] masks (query t, key j): global and local."""
    B, T = pos.shape
    t = torch.arange(T)[None, :, None]
    j = torch.arange(T)[None, None, :]
    g = (j <= t)
    if mutate != "no-doc-mask":
        g = g & (j >= t - pos[:, :, None].long())
    W = cfg.W + (1 if mutate == "window-off-by-one" else 0)
    loc = g & (t - j < W)
    return g[:, None], loc[:, None]


def masked_softmax(s, mask):
    return torch.softmax(s.masked_fill(~mask, float("-inf")), -1)


def swiglu(x, wg, wu, wd):
    return (torch.nn.functional.silu(x @ wg.T) * (x @ wu.T)) @ wd.T


def moe_ffn(P, p, cfg, h, train, mutate, info):
    """The DeepSeekMoE FFN of layer prefix p on h [B, T, d]: its output and
    its balancing losses (a 0-d tensor; 0 in inference mode).

    Router logits z = h W_r^T; probabilities softmax(z) or sigmoid(z).  Each
    token picks the top k of probability (+ e_score_correction_bias under
    balance bias, for the selection only), ties to the lower index.  Gates:
    the selected probabilities (softmax) or the selected sigmoid scores
    normalised over the k.  Training mode: an expert takes at most
    capacity = ceil(factor * n * k / E) (clamped to [1, n]; factor 0: no
    limit) of its (token, expert) pairs, first come first served in token
    order; a dropped pair adds nothing.  Shared experts: one SwiGLU of
    n_shared * moe_intermediate_size over every token.

    Balancing losses (training mode; q = the probabilities, or the sigmoid
    scores normalised over all E; f = selections before dropping / (n k),
    a constant to the gradient, as in Switch):
        aux = aux_coef E sum_e f_e mean_t q_te           (balance aux)
        seq = seq_coef E mean_rows sum_e f_re mean_{t in row} q_te
        z   = z_coef mean_t logsumexp(z_t)^2
    info (a list, or None) gets a dict per layer: selections per expert,
    dropped pairs and the smallest gap between the k-th and (k+1)-th
    selection scores of any token (how close the routing is to a tie)."""
    B, T, d = h.shape
    n, E, k = B * T, cfg.E, cfg.k
    x = h.reshape(n, d)
    out = torch.zeros_like(x)
    if cfg.shared:
        out = out + swiglu(x, P[p + "mlp.shared_experts.gate_proj.weight"], P[p + "mlp.shared_experts.up_proj.weight"],
                           P[p + "mlp.shared_experts.down_proj.weight"])
    z = x @ P[p + "mlp.gate.weight"].T                                  # [n, E]
    prob = torch.softmax(z, -1) if cfg.router == "softmax" else torch.sigmoid(z)
    bias = P.get(p + "mlp.gate.e_score_correction_bias")
    score = prob.detach() + (bias.detach() if bias is not None else 0)
    order = torch.sort(score, dim=-1, descending=True, stable=True).indices
    sel = order[:, :k]                                                  # [n, k]
    ranked = score.gather(1, order)
    margin = float((ranked[:, k - 1] - ranked[:, k]).min()) if k < E else math.inf
    gate = prob.gather(1, sel)
    if cfg.router == "sigmoid" or (mutate == "softmax-renorm" and cfg.router == "softmax"):
        gate = gate / gate.sum(-1, keepdim=True)
    if mutate == "bias-in-gate" and bias is not None:
        gate = gate + bias[sel]
    if train and cfg.capacity_factor > 0 and mutate != "no-capacity":
        cap = min(max(math.ceil(cfg.capacity_factor * n * k / E), 1), n)
    else:
        cap = n * k
    flat = sel.reshape(-1).tolist()                                     # pair i = t k + s, token order
    count = [0] * E
    kept = []
    for e in flat:
        kept.append(count[e] < cap)
        count[e] += kept[-1]
    kept = torch.tensor(kept).view(n, k)
    for e in range(E):
        t_idx, s_idx = torch.nonzero((sel == e) & kept, as_tuple=True)
        if t_idx.numel() == 0:
            continue
        q = f"{p}mlp.experts.{e}."
        y = swiglu(x[t_idx], P[q + "gate_proj.weight"], P[q + "up_proj.weight"], P[q + "down_proj.weight"])
        out = out.index_add(0, t_idx, gate[t_idx, s_idx][:, None] * y)
    selected = torch.bincount(sel.reshape(-1), minlength=E)
    if info is not None:
        info.append({"selected": selected.tolist(), "dropped": int((~kept).sum()), "margin": margin,
                     "sel": sel.clone()})
    loss = torch.zeros(())
    if train:
        qn = prob if cfg.router == "softmax" else prob / prob.sum(-1, keepdim=True)
        if cfg.balance == "aux" and cfg.aux_coef > 0:
            f = selected.to(torch.float64) / (n * k)
            loss = loss + cfg.aux_coef * E * (f * qn.mean(0)).sum()
        if cfg.seq_aux_coef > 0:
            fr = torch.stack([torch.bincount(sel[r * T:(r + 1) * T].reshape(-1), minlength=E) for r in range(B)])
            fr = fr.to(torch.float64) / (T * k)                                  # [B, E]
            pr = qn.view(B, T, E).mean(1)
            loss = loss + cfg.seq_aux_coef * E * (fr * pr).sum(-1).mean()
        if cfg.z_coef > 0:
            loss = loss + cfg.z_coef * torch.logsumexp(z, -1).pow(2).mean()
    return out.view(B, T, d), loss


def forward(P, cfg, tokens, pos, mutate=None, train=False, info=None):
    """Logits [B, T, V] in float64 and the MoE balancing losses summed over
    the layers (0 without MoE or in inference mode).  P: {name: tensor}."""
    B, T = tokens.shape
    H, KV, hd = cfg.H, cfg.KV, cfg.hd
    mg, ml = masks(pos, cfg, mutate)
    aux = torch.zeros(())
    x = P["model.embed_tokens.weight"][tokens.long()]
    for l in range(cfg.L):
        p = f"model.layers.{l}."
        h = rmsnorm(x, P[p + "input_layernorm.weight"], cfg.eps)
        q = (h @ P[p + "self_attn.q_proj.weight"].T).view(B, T, H, hd)
        k = (h @ P[p + "self_attn.k_proj.weight"].T).view(B, T, KV, hd)
        v = (h @ P[p + "self_attn.v_proj.weight"].T).view(B, T, KV, hd)
        q, k = rope(q, pos, cfg, mutate), rope(k, pos, cfg, mutate)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)   # [B, heads, T, hd]
        # GQA: query head h reads kv head h // (H / KV).
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        s = q @ k.transpose(-1, -2) / math.sqrt(hd)
        kind = cfg.kind(l)
        if kind == "G":
            att = masked_softmax(s, mg) @ v
        elif kind == "L":
            att = masked_softmax(s, ml) @ v
        else:
            a = P[p + "self_attn.hybrid_alpha"][0]
            if mutate == "alpha-swapped":
                a = 1 - a
            att = a * (masked_softmax(s, mg) @ v) + (1 - a) * (masked_softmax(s, ml) @ v)
        att = att.transpose(1, 2).reshape(B, T, H * hd)
        x = x + att @ P[p + "self_attn.o_proj.weight"].T
        h2 = rmsnorm(x, P[p + "post_attention_layernorm.weight"], cfg.eps)
        if cfg.is_moe(l):
            y, a = moe_ffn(P, p, cfg, h2, train, mutate, info)
            x, aux = x + y, aux + a
            continue
        g = h2 @ P[p + "mlp.gate_proj.weight"].T
        u = h2 @ P[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ P[p + "mlp.down_proj.weight"].T
    h = rmsnorm(x, P["model.norm.weight"], cfg.eps)
    head = P["model.embed_tokens.weight"] if cfg.tie else P["lm_head.weight"]
    return h @ head.T, aux


def loss_fn(logits, targets, weights):
    """sum(w_i ce_i) / #(targets >= 0 with w != 0); target -1 positions excluded."""
    V = logits.shape[-1]
    z = logits.reshape(-1, V)
    t = targets.reshape(-1).long()
    w = weights.reshape(-1).to(torch.float64)
    valid = t >= 0
    w = torch.where(valid, w, torch.zeros_like(w))
    ce = torch.logsumexp(z, -1) - z.gather(1, t.clamp(min=0)[:, None])[:, 0]
    count = (valid & (w != 0)).sum()
    return (w * ce).sum() / count


def adamw_steps(P0, cfg, batch, steps, mutate=None, kappa=0.0, train=False, infos=None):
    """STEPS AdamW steps on one batch, as lib/train/optim.c does them:
    global grad-norm clipping at 1.0 (grads *= clip/norm when norm > clip),
    lr 1e-3 constant, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on
    2-D tensors only.  torch.optim.AdamW's update is the same math.

    Returns the weights, and for every weight how far (in units of lr) its
    update may move when each gradient is off by kappa times its tensor's
    largest |gradient|: the sum over the steps of
    min(2, kappa * max|g of the tensor| / sqrt(v_hat)), 0 where v is 0.

    The objective is the loss plus the MoE balancing losses (training
    mode); infos (a list, or None) gets each step's moe_ffn infos."""
    P = {n: t.clone().requires_grad_(True) for n, t in P0.items()}
    decay = [t for n, t in P.items() if t.dim() == 2 or mutate == "decay-all"]
    no_decay = [t for n, t in P.items() if not (t.dim() == 2 or mutate == "decay-all")]
    beta2 = 0.95
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, beta2), eps=1e-8)
    tokens, targets, pos, weights = batch
    sens = {n: torch.zeros_like(t) for n, t in P.items()}
    for step in range(1, steps + 1):
        opt.zero_grad()
        info = []
        logits, aux = forward(P, cfg, tokens, pos, mutate, train, info)
        (loss_fn(logits, targets, weights) + aux).backward()
        if infos is not None:
            infos.append(info)
        for t in P.values():
            if t.grad is None:   # e_score_correction_bias: selection only, no gradient
                t.grad = torch.zeros_like(t)
        with torch.no_grad():
            norm = math.sqrt(sum(float((t.grad ** 2).sum()) for t in P.values()))
            if norm > 1.0:
                for t in P.values():
                    t.grad.mul_(1.0 / norm)
        gmax = {n: float(t.grad.abs().max()) for n, t in P.items()}
        opt.step()
        if mutate == "no-bias-correction":
            for st in opt.state.values():
                st["step"] = torch.tensor(1e9)   # bias corrections 1 from the next step on
        for n, t in P.items():
            v = opt.state[t]["exp_avg_sq"]
            rms = (v / (1 - beta2 ** step)).sqrt()
            s = (kappa * gmax[n] / rms.clamp(min=1e-300)).clamp(max=2.0)
            sens[n] += torch.where(v > 0, s, torch.zeros_like(s))
    return {n: t.detach() for n, t in P.items()}, sens


# ---- comparisons ---------------------------------------------------------------------------------

def rel_err(a, b, floor=1e-6):
    """max|a - b| / max(max|b|, floor): b is the reference."""
    a, b = f64(a) if not torch.is_tensor(a) else a, f64(b) if not torch.is_tensor(b) else b
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    scale = float(b.abs().max()) if b.numel() else 0.0
    return diff / max(scale, floor), diff, scale


class Report:
    def __init__(self, label):
        self.label = label

    def check(self, name, ok, notes):
        for n in notes:
            print("# " + n)
        print(("ok" if ok else "not ok") + f" - {self.label}: {name}")
        sys.stdout.flush()


# Tolerances: relative to the larger magnitude of the reference tensor.
TOL_FWD = 1e-4      # logits, loss: float32 C vs float64 torch
TOL_GRAD = 1e-4     # each gradient tensor
# Gradients: max|C - torch| <= max(TOL_GRAD * max|torch| of the tensor,
# TOL_GRAD * GRAD_FLOOR * largest |gradient| of any tensor), i.e. an
# absolute floor of 1e-7 of the largest gradient.  float32 rounding in the
# C backward is relative to the signals it sums, not to the result: a
# tensor whose gradient cancels to ~0 (hybrid_alpha is one scalar, a sum
# of terms of both signs) keeps an error of up to ~4e-7 of the largest
# gradient (the worst seen on any tensor here; ~5e-9 on hybrid_alpha).
# The floor only applies to tensors whose largest gradient is under 1e-3
# of the overall largest (the q/k projections at init are ~1e-3).
GRAD_FLOOR = 1e-3
TOL_GEN = 1e-4      # generator vs batch forward


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--mutate", choices=sorted(MUTATIONS))
    ap.add_argument("--label", default=None)
    ap.add_argument("--hf", action="store_true", help="compare transformers' LlamaForCausalLM instead")
    ap.add_argument("--expect-drops", action="store_true",
                    help="MoE training mode: the forward check also requires capacity to drop a pair")
    args = ap.parse_args()
    d = args.dump
    label = args.label or d
    if args.hf:
        return hf_check(d, label)

    cfg = Config(f"{d}/config.json")
    names = tensor_names(cfg)
    w0, meta = st_read(f"{d}/model.safetensors")
    bt, _ = st_read(f"{d}/batch.safetensors")
    out, out_meta = st_read(f"{d}/out.safetensors")
    train = out_meta.get("moe_train") == "1"
    after, _ = st_read(f"{d}/after.safetensors")
    gen, _ = st_read(f"{d}/generate.safetensors")
    rep = Report(label)

    if sorted(w0) != sorted(names):
        rep.check("tensor names", False, [f"model.safetensors has {sorted(set(w0) ^ set(names))} "
                                          "beyond/short of the expected names"])
        return 0
    shapes = tensor_shapes(cfg)
    bad = [f"{n} {list(w0[n].shape)}, want {list(shapes[n])}" for n in names if tuple(w0[n].shape) != shapes[n]]
    if meta.get("format") != "pt":
        bad.append(f"model.safetensors __metadata__ format {meta.get('format')!r}, want 'pt' (transformers needs it)")
    if bad:
        rep.check("checkpoint layout", False, bad)
        return 0

    tokens = torch.from_numpy(bt["tokens"].astype(np.int64))
    targets = torch.from_numpy(bt["targets"].astype(np.int64))
    pos = torch.from_numpy(bt["pos"].astype(np.int64))
    weights = f64(bt["weights"])
    batch = (tokens, targets, pos, weights)
    mut = args.mutate

    # ---- forward: logits, loss and (MoE) the balancing losses and routing
    P = {n: f64(w0[n]).requires_grad_(True) for n in names}
    info = []
    logits, aux = forward(P, cfg, tokens, pos, mut, train, info)
    loss = loss_fn(logits, targets, weights)
    e_log, dl, sl = rel_err(out["logits"], logits.detach())
    e_loss, _, _ = rel_err(out["loss"], loss.detach())
    ok = e_log <= TOL_FWD and e_loss <= TOL_FWD
    notes = [f"logits: max|C - torch| {dl:.3g}, max|torch| {sl:.3g}, rel {e_log:.3g} (tol {TOL_FWD:g})",
             f"loss: C {float(out['loss']):.9g}, torch {float(loss):.9g}, rel {e_loss:.3g} (tol {TOL_FWD:g})"]
    if "aux_loss" in out:
        # Inference mode or no MoE: 0 in both (the floor makes that exact).
        e_aux, _, _ = rel_err(out["aux_loss"], aux.detach())
        ok = ok and e_aux <= TOL_FWD
        notes.append(f"aux_loss ({'training' if train else 'inference'} mode): C {float(out['aux_loss']):.9g}, "
                     f"torch {float(aux):.9g}, rel {e_aux:.3g} (tol {TOL_FWD:g})")
    if info:
        ok = moe_routing_notes(cfg, info, out, train, args.expect_drops, notes) and ok
    rep.check("forward (logits, loss" + (", aux_loss, routing)" if info else ")"), ok, notes)

    # ---- gradients of every tensor (of the loss plus the balancing losses)
    (loss + aux).backward()
    for n in names:
        if P[n].grad is None:   # e_score_correction_bias: used for the selection only
            P[n].grad = torch.zeros_like(P[n])
    gmax = max(float(P[n].grad.abs().max()) for n in names)
    notes, ok = [], True
    worst = (0.0, "")
    for n in names:
        key = "grad." + n
        if key not in out:
            ok = False
            notes.append(f"{key}: missing from out.safetensors")
            continue
        if n.endswith("e_score_correction_bias"):
            # Nothing in the C backward writes it: exactly zero.
            nz = int((out[key] != 0).sum())
            if nz:
                ok = False
                notes.append(f"{n}: {nz} non-zero gradients (max |{float(np.abs(out[key]).max()):.3g}|), want 0")
            continue
        e, diff, scale = rel_err(out[key], P[n].grad, floor=GRAD_FLOOR * gmax)
        if e > worst[0]:
            worst = (e, n)
        if e > TOL_GRAD:
            ok = False
            notes.append(f"{n}: max|C - torch| {diff:.3g}, max|torch| {scale:.3g}, rel {e:.3g}")
    notes.append(f"{len(names)} gradients, largest |grad| {gmax:.3g}, worst rel {worst[0]:.3g} ({worst[1]}) "
                 f"(tol {TOL_GRAD:g}, at least {TOL_GRAD * GRAD_FLOOR * gmax:.3g})")
    rep.check("gradients", ok, notes)

    # ---- AdamW: weights after STEPS steps on the same batch
    # Tolerance, per weight:
    #   |C - torch| <= 1e-4 * max|w of its tensor| + 1e-5 * lr * steps + lr * sens
    # The first two terms are the usual rel 1e-4 (1e-4 for the norms'
    # weights of 1, ~6e-6 for the matrices: well under one step's move of
    # ~lr = 1e-3) and atol 1e-5 of the largest possible move.  The third is
    # where AdamW is ill-conditioned: a step moves a weight by
    # lr * m / (sqrt(v) + eps), about lr * sign(g) at first however small g
    # is, so a gradient error dg moves it by ~lr * dg / sqrt(v).  The C
    # gradients are float32, off from ours by ~1e-6 of their tensor's
    # largest |gradient| (the gradients check above prints the worst), so
    # sens sums over the steps min(2, KAPPA * max|g| / sqrt(v_hat)) with
    # KAPPA = 1e-5 (10x that): tiny for weights with ordinary gradients,
    # up to 2 lr per step (a move the wrong way) where the gradient is ~0
    # and its sign is not determined in float32.
    KAPPA = 1e-5
    lr, steps = 1e-3, args.steps
    # MoE in training mode: each step routes anew (the reference from its
    # weights, C from its), so the selections may change from step to step;
    # that is compared like everything else as long as no routing decision
    # is near a tie (see moe_step_notes).
    infos = []
    P1, sens = adamw_steps({n: f64(w0[n]) for n in names}, cfg, batch, steps, mut, kappa=KAPPA, train=train,
                           infos=infos)
    notes, ok = [], True
    worst = (0.0, "", 0.0, 0.0)
    n_loose = 0
    for n in names:
        c = f64(after[n])
        ref = P1[n]
        diff = (c - ref).abs()
        base = 1e-4 * float(ref.abs().max()) + 1e-5 * lr * steps
        tol = base + lr * sens[n]
        n_loose += int((lr * sens[n] > base).sum())
        ratio = diff / tol
        i = int(ratio.argmax())
        r = float(ratio.flatten()[i])
        if r > worst[0]:
            worst = (r, n, float(diff.flatten()[i]), float(tol.flatten()[i]))
        if r > 1:
            ok = False
            notes.append(f"{n}: |C - torch| {float(diff.flatten()[i]):.3g} at {i}, tol {float(tol.flatten()[i]):.3g}; "
                         f"max|C - torch| {float(diff.max()):.3g}, {int((ratio > 1).sum())} of {diff.numel()} "
                         "outside their tol")
    moved = max(float((f64(after[n]) - f64(w0[n])).abs().max()) for n in names)
    dmax = max(float((f64(after[n]) - P1[n]).abs().max()) for n in names)
    notes.append(f"{steps} steps: weights moved by up to {moved:.3g}; max|C - torch| {dmax:.3g}; worst "
                 f"|C - torch| / tol {worst[0]:.3g} ({worst[1]}: {worst[2]:.3g} vs {worst[3]:.3g})")
    notes.append(f"tol: rel 1e-4 of max|w| + {1e-5 * lr * steps:.3g} + lr * sens (KAPPA {KAPPA:g}); "
                 f"{n_loose} weights have sens above the rest of their tol")
    skip = moe_step_notes(infos, notes) if info else None
    rep.check(f"adamw ({steps} steps)" + (f" # SKIP {skip}" if skip else ""), ok or bool(skip), notes)

    # ---- generator: KV cache, token by token over row 0, after the steps
    gl = f64(gen["generator_logits"])
    bl = f64(gen["batch_logits"])
    e_cc, d_cc, _ = rel_err(gl, bl[0])
    Pa = {n: f64(after[n]) for n in names}
    with torch.no_grad():
        la, _ = forward(Pa, cfg, tokens, pos, mut)   # inference mode, as ref_dump's generator part
    e_gt, d_gt, _ = rel_err(gl, la[0])
    e_bt, d_bt, _ = rel_err(bl, la)
    row0_plain = bool((pos[0] == torch.arange(pos.shape[1])).all())
    rep.check("generator (KV cache)", e_cc <= TOL_GEN and e_gt <= TOL_GEN and e_bt <= TOL_FWD and row0_plain,
              [f"generator vs C batch row 0: max diff {d_cc:.3g}, rel {e_cc:.3g} (tol {TOL_GEN:g})",
               f"generator vs torch row 0 (after weights): max diff {d_gt:.3g}, rel {e_gt:.3g} (tol {TOL_GEN:g})",
               f"C batch vs torch, all rows (after weights): max diff {d_bt:.3g}, rel {e_bt:.3g} (tol {TOL_FWD:g})"]
              + ([] if row0_plain else ["row 0's pos is not 0..T-1: the generator comparison does not apply"]))
    return 0


# MoE routing: a selection is a discrete function of float32 scores in C.
# The C scores differ from ours by ~1e-7 (forward rel error) at the initial
# weights and by ~1e-6 after the AdamW steps (weights within ~1e-6 of ours),
# so a selection can only legitimately differ where the gap between the
# k-th and (k+1)-th selection scores of a token is under ~1e-6; gaps of
# MARGIN_MIN and more leave no doubt.
MARGIN_MIN = 1e-5


def moe_routing_notes(cfg, info, out, train, expect_drops, notes):
    """Notes on the forward pass's routing, and whether it agrees with the
    C model's selection counts and dropped pairs (ref_dump writes them in
    training mode).  With expect_drops, capacity must drop some pair."""
    moe_layers = [l for l in range(cfg.L) if cfg.is_moe(l)]
    ok = True
    c_sel, c_drop = out.get("moe.selected"), out.get("moe.dropped")
    total_drop = 0
    for l, inf in zip(moe_layers, info):
        total_drop += inf["dropped"]
        line = (f"layer {l}: selections per expert {inf['selected']}, dropped {inf['dropped']} of "
                f"{sum(inf['selected'])}, smallest top-{cfg.k} score gap {inf['margin']:.3g}")
        if c_sel is not None:
            same = [int(v) for v in c_sel[l]] == inf["selected"] and int(c_drop[l]) == inf["dropped"]
            if not same:
                ok = False
                line += f"; C: selections {[int(v) for v in c_sel[l]]}, dropped {int(c_drop[l])} (differ)"
            else:
                line += "; C the same"
        notes.append(line)
    margin = min(inf["margin"] for inf in info)
    if margin < MARGIN_MIN:
        notes.append(f"routing within {margin:.3g} of a tie (< {MARGIN_MIN:g}): C may legitimately select otherwise")
    n = info[0]["sel"].shape[0]
    if train and cfg.capacity_factor > 0:
        cap = min(max(math.ceil(cfg.capacity_factor * n * cfg.k / cfg.E), 1), n)
        notes.append(f"capacity {cap} pairs per expert, {total_drop} pairs dropped in all")
    if expect_drops and total_drop == 0:
        ok = False
        notes.append("--expect-drops: capacity dropped no pair (the check of dropping is void)")
    return ok


def moe_step_notes(infos, notes):
    """Notes on the AdamW steps' routing; a reason to skip the comparison
    when some step's routing is within MARGIN_MIN of a tie, else None."""
    margins = [min(inf["margin"] for inf in step) for step in infos]
    notes.append("routing per step: smallest top-k score gaps " + ", ".join(f"{m:.3g}" for m in margins)
                 + f"; dropped pairs per layer at step 1 {[inf['dropped'] for inf in infos[0]]}")
    for s in range(1, len(infos)):
        moved = sum(int((a["sel"] != b["sel"]).any(-1).sum()) for a, b in zip(infos[s - 1], infos[s]))
        notes.append(f"step {s + 1}: {moved} tokens route differently from step {s}, "
                     f"dropped {[inf['dropped'] for inf in infos[s]]}")
    for s, m in enumerate(margins):
        if m < MARGIN_MIN:
            return f"routing at step {s + 1} within {m:.3g} of a tie: C and torch may route differently"
    return None


def hf_check(d, label):
    """Hugging Face transformers' LlamaForCausalLM on DIR (an all-global
    dump): its float32 logits on batch row 0 vs the C logits."""
    import transformers
    cfg = Config(f"{d}/config.json")
    if any(cfg.kind(l) != "G" for l in range(cfg.L)):
        print(f"ok - {label}: transformers LlamaForCausalLM # SKIP not an all-global model")
        return 0
    bt, _ = st_read(f"{d}/batch.safetensors")
    out, _ = st_read(f"{d}/out.safetensors")
    model = transformers.LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32)
    model.eval()
    tokens = torch.from_numpy(bt["tokens"][:1].astype(np.int64))
    T = tokens.shape[1]
    with torch.no_grad():
        logits = model(input_ids=tokens, position_ids=torch.arange(T)[None]).logits[0].double()
    e, diff, scale = rel_err(out["logits"][0], logits)
    print(f"# transformers {transformers.__version__}: max|C - HF| {diff:.3g}, max|HF| {scale:.3g}, "
          f"rel {e:.3g} (tol {TOL_FWD:g})")
    print(("ok" if e <= TOL_FWD else "not ok") + f" - {label}: transformers LlamaForCausalLM logits, row 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
