"""How fast one core multiplies the matrices of a training step: GFLOP/s per shape.

The shapes are those of a Billiards2D step at batch 256 and width 128 (forward and the
two products of the backward pass). Each product is timed alone, 200 times after a
warm-up, and the median is reported; docs/performance.md sets these against the
products' share of a step.

    python benchmarks/matmul_speed.py --threads 1
"""
import argparse
import statistics
import time

import torch

SHAPES = {  # (rows, inner, cols)
    "forward: 256 x 128 @ 128 x 128": (256, 128, 128),
    "forward, GRU gates: 256 x 128 @ 128 x 384": (256, 128, 384),
    "backward, weight grad: 128 x 256 @ 256 x 128": (128, 256, 128),
    "backward, input grad: 256 x 384 @ 384 x 128": (256, 384, 128),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for name, (m, k, n) in SHAPES.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(20):
            a @ b
        seconds = []
        for _ in range(args.repeats):
            tick = time.perf_counter()
            a @ b
            seconds.append(time.perf_counter() - tick)
        s = statistics.median(seconds)
        print(f"{name:45s} {2 * m * k * n / s / 1e9:7.1f} GFLOP/s  ({s * 1e6:.1f} us)")


if __name__ == "__main__":
    main()
