"""Seconds per 30 s segment on CPU (2 threads): transformers' AST vs maest, full and early exit.

Not a test: run ``python benchmarks/model.py`` by hand; writes benchmarks/results/model.md.
Weights are random (speed does not depend on them); the model is the full-size 30 s architecture.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable
from pathlib import Path

import torch

from maest.checkpoints.hf import hf_config
from maest.registry import architecture
from maest.model import Maest, pool_tokens
from timing import interleaved_medians

RESULTS = Path(__file__).resolve().parent / "results" / "model.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from transformers import ASTConfig, ASTForAudioClassification

    config = architecture("discogs-maest-30s-pw-129e")
    ours = Maest(config).eval()
    hf_settings = hf_config(config)
    ast_config = ASTConfig(**{k: v for k, v in hf_settings.items() if k != "architectures"})
    theirs = ASTForAudioClassification(ast_config).eval()
    mel = torch.randn(1, config.n_mels, config.segment_frames)  # (1, 96, 1875)
    ast_input = torch.randn(1, hf_settings["max_length"], config.n_mels)  # (1, 1876, 96)

    cases: list[tuple[str, Callable[[], object]]] = [
        ("(a) transformers AST, 12 blocks", lambda: theirs(ast_input).logits),
        ("(b) maest, 12 blocks", lambda: ours(mel)),
        ("(c) maest, early exit 7 blocks", lambda: pool_tokens(ours.forward_features(mel, blocks=7))),
    ]
    for every in (2, 3, 5, 10):
        cases.append((f"(d) maest, 7 blocks, patchout T={every}",
                      lambda every=every: pool_tokens(ours.forward_features(mel, blocks=7, patchout_time=every))))
    load_before = os.getloadavg()[0]
    with torch.inference_mode():
        medians = interleaved_medians([run for _, run in cases], args.repeats, verbose=True)
    load_after = os.getloadavg()[0]
    rows = [(name, value) for (name, _), value in zip(cases, medians)]
    for name, value in rows:
        print(f"{name}: {value:.3f} s")
    reference = rows[0][1]
    lines = [
        "# Model speed: one 30 s segment, CPU",
        "",
        f"Full-size architecture (12 blocks, width 768, 400 classes), random weights, batch 1; maest input "
        f"(1, 96, 1875), AST input (1, {hf_settings['max_length']}, 96). torch {torch.__version__}, "
        f"{args.threads} threads, {platform.processor() or platform.machine()}; median of {args.repeats} runs "
        f"after one warm-up round, cases interleaved, `torch.inference_mode()`. AST attention: "
        f"`{theirs.config._attn_implementation}`. 1-min load average {load_before:.1f} before, "
        f"{load_after:.1f} after (other work on the machine inflates the absolute times). "
        f"Written by `benchmarks/model.py`.",
        "",
        "| case | seconds / segment | speed-up vs (a) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {value:.3f} | {reference / value:.2f}x |" for name, value in rows]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
