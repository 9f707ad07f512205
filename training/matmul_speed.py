"""Per-matmul times at this model's training shapes, one thread: the generic BLAS fp32 path, the oneDNN
fp32 path model.py takes, and bf16 (what autocast runs under train.py --bf16).

    /usr/bin/python3 training/matmul_speed.py
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from model import _bmm_nt, _mm_nt  # noqa: E402


def ms(f, n=20):
    f()
    t = time.time()
    for _ in range(n):
        f()
    return (time.time() - t) / n * 1e3


def main():
    torch.set_num_threads(1)
    print('op | shape | fp32 generic | fp32 oneDNN | bf16 (ms)')
    for n, k, m in [(14000, 96, 288), (14000, 96, 384), (4000, 128, 512), (4000, 512, 128)]:
        a, b = torch.randn(n, k), torch.randn(m, k)
        ab, bb = a.bfloat16(), b.bfloat16()
        print(f'linear | {n}x{k} @ {k}x{m} | {ms(lambda: a @ b.T):.1f} | {ms(lambda: _mm_nt(a, b)):.1f} | {ms(lambda: torch.nn.functional.linear(ab, bb)):.2f}')
    for g, n, k, m in [(96, 600, 24, 600), (200, 40, 32, 640)]:
        a, b = torch.randn(g, n, k), torch.randn(g, m, k)
        ab, bb = a.bfloat16(), b.bfloat16()
        print(f'bmm | {g} x ({n}x{k} @ {k}x{m}) | {ms(lambda: a @ b.transpose(1, 2)):.1f} | {ms(lambda: _bmm_nt(a, b)):.1f} | {ms(lambda: ab @ bb.transpose(1, 2)):.2f}')


if __name__ == '__main__':
    main()
