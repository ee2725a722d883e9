"""Multi-head self-attention block: fused QKV nn.Linear(512, 1536), 8-head softmax attention, output nn.Linear on [8, 256, 512]."""
import math

import torch
import torch.nn as nn

BATCH = 8
SEQ = 256
DIM = 512
HEADS = 8


class Model(nn.Module):
    """qkv = x @ Wqkv^T + b split into q, k, v; per head softmax(q k^T / sqrt(d)) v (no mask); then out projection."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        assert dim % heads == 0
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        with torch.no_grad():   # unit-variance q, k, v (scores ~ N(0, 1) after the 1/sqrt(d) scale)
            self.qkv.weight.normal_(0.0, dim ** -0.5)
            self.proj.weight.normal_(0.0, 2.0 * dim ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.heads
        hd = d // h
        q, k, v = self.qkv(x).split(d, dim=-1)
        q = q.reshape(b, t, h, hd).transpose(1, 2)   # [b, h, t, hd]
        k = k.reshape(b, t, h, hd).transpose(1, 2)
        v = v.reshape(b, t, h, hd).transpose(1, 2)
        att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))   # [b, h, t, t]
        att = torch.softmax(att, dim=-1)
        o = torch.matmul(att, v).transpose(1, 2).reshape(b, t, d)
        return self.proj(o)


def get_inputs():
    return [torch.randn(BATCH, SEQ, DIM)]


def get_init_inputs():
    return [DIM, HEADS]
