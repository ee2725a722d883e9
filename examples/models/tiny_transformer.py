"""A small pre-norm transformer block (GPT-style), fp32: the example model of whole-model mode.

    kernelsmith model examples/models/tiny_transformer.py --generations examples/models/tiny_transformer_generations.jsonl

A model file has the KernelBench layout: `Model`, `get_inputs()` (example inputs, here a
batch of 8 sequences of 256 tokens of width 512) and `get_init_inputs()`; kernelsmith
builds the model under torch.manual_seed(0), in eval mode.
"""

import math

import torch
import torch.nn as nn

WIDTH, HEADS, HIDDEN = 512, 8, 2048
BATCH, SEQ = 8, 256


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=-1)
        q = q.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        k = k.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        v = v.view(b, t, self.heads, c // self.heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(c // self.heads))
        att = att.softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, c)
        return self.proj(y)


class Model(nn.Module):
    def __init__(self, width: int = WIDTH, heads: int = HEADS, hidden: int = HIDDEN):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        x = x + self.drop(self.fc2(self.act(self.fc1(self.ln2(x)))))
        return x


def get_inputs():
    return [torch.randn(BATCH, SEQ, WIDTH)]


def get_init_inputs():
    return [WIDTH, HEADS, HIDDEN]
