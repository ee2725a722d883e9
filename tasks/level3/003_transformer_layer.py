"""Pre-norm transformer layer on [8, 128, 256] with 4 heads: y = x + Attn(LN1(x)); out = y + MLP(LN2(y)), MLP = 256 -> 1024 -> 256 with tanh GELU."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 8
SEQ = 128
DIM = 256
HEADS = 4


class Model(nn.Module):
    """LayerNorms with random affine; attention = fused QKV linear, softmax(q k^T / sqrt(d)) v, out linear."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        assert dim % heads == 0
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        with torch.no_grad():
            for ln in (self.ln1, self.ln2):
                ln.weight.normal_(1.0, 0.2)
                ln.bias.normal_(0.0, 0.2)

    def attn(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.heads
        hd = d // h
        q, k, v = self.qkv(x).split(d, dim=-1)
        q = q.reshape(b, t, h, hd).transpose(1, 2)   # [b, h, t, hd]
        k = k.reshape(b, t, h, hd).transpose(1, 2)
        v = v.reshape(b, t, h, hd).transpose(1, 2)
        att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hd)), dim=-1)
        o = torch.matmul(att, v).transpose(1, 2).reshape(b, t, d)
        return self.proj(o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + self.attn(self.ln1(x))
        return y + self.fc2(F.gelu(self.fc1(self.ln2(y)), approximate="tanh"))


def get_inputs():
    return [torch.randn(BATCH, SEQ, DIM)]


def get_init_inputs():
    return [DIM, HEADS]
