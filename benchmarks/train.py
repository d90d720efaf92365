"""Training-step throughput (segments/s): forward + backward + AdamW step of the full-size 30 s MAEST,
with the paper's structured patchout (90 time columns, 3 frequency rows dropped) and without.

CPU: torch with 2 threads, batch 2, a few steps (about 3-4 minutes); GPU (when available): batch 12,
bf16 autocast, more steps. Also times the EfficientNet-B0 baseline on 128-frame crops.
Writes benchmarks/results/train.md.

    python benchmarks/train.py               # CPU, and the GPU too when torch.cuda.is_available()
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from maest.configs import for_segment
from maest.effnet import EffNet, EffNetConfig
from maest.model import Maest
from maest.train.augment import SpecAugment, mixup

RESULTS = Path(__file__).resolve().parent / "results" / "train.md"


def step_rate(model: torch.nn.Module, frames: int, batch: int, steps: int, warmup: int, device: str) -> float:
    """Segments per second of full training steps (SpecAugment, mixup, forward, BCE, backward, AdamW)."""
    model = model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=1e-4)
    augment = SpecAugment()
    mel = torch.randn(batch, 96, frames, device=device)
    targets = (torch.rand(batch, model.config.num_classes, device=device) < 0.005).float()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()

    def one_step() -> None:
        mixed = mixup(augment(mel), targets, 0.3)
        with autocast:
            logits = model(mixed.inputs)
        loss = F.binary_cross_entropy_with_logits(logits.float(), mixed.targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        one_step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one_step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def cases() -> list[tuple[str, torch.nn.Module, int]]:
    torch.manual_seed(0)
    patchout = for_segment(30)
    full = for_segment(30, train_patchout_time=0, train_patchout_freq=0)
    return [
        ("MAEST-30s, structured patchout (90 time columns, 3 rows)", Maest(patchout), patchout.segment_frames),
        ("MAEST-30s, no patchout", Maest(full), full.segment_frames),
        ("EffNet-B0, 128-frame crops", EffNet(EffNetConfig()), 128),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2, help="CPU batch size")
    parser.add_argument("--steps", type=int, default=3, help="timed CPU steps per case")
    parser.add_argument("--gpu-batch", type=int, default=12)
    parser.add_argument("--gpu-steps", type=int, default=20)
    parser.add_argument("--no-gpu", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.no_gpu else [])
    for device in devices:
        batch, steps, warmup = (args.batch, args.steps, 1) if device == "cpu" else (args.gpu_batch, args.gpu_steps, 3)
        for name, model, frames in cases():
            rate = step_rate(model, frames, batch, steps, warmup, device)
            rows.append((device, name, batch, rate))
            print(f"{device:5s} {name:58s} batch {batch:3d}: {rate:8.3f} segments/s", flush=True)
            del model
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name() if "cuda" in devices else "none"
    load_after = os.getloadavg()[0]
    lines = [
        "# Training throughput",
        "",
        "Full training steps (SpecAugment, mixup, forward, BCE, backward, AdamW) with random weights;",
        f"`python benchmarks/train.py` (torch {torch.__version__}, CPU {cpu}, {args.threads} threads, "
        f"{os.cpu_count()} cores visible, 1-minute load average {load_before:.1f} before and "
        f"{load_after:.1f} after: other processes share these cores; GPU: {gpu}).",
        "",
        "| device | model | batch | segments/s |",
        "|---|---|---|---|",
        *[f"| {device} | {name} | {batch} | {rate:.3f} |" for device, name, batch, rate in rows],
        "",
        "Structured patchout keeps 96 of 186 time columns and 6 of 9 frequency rows: 576 instead of 1674",
        "patch tokens; attention cost is quadratic in them, hence a speed-up larger than the 2.9x token ratio",
        "(and a matching memory saving). The paper's cost: 48 h for MAEST-30s on 4 x RTX 2080 Ti",
        "(130 x 200,000 segments), i.e. about 150 segments/s in total.",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
