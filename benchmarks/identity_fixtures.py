"""Fixtures of benchmarks/check_identical.sh: tiny random-weight models, the clips, a tiny labelled set."""

import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from maest.checkpoints.native import save_native
from maest.configs import MaestConfig
from maest.effnet import EffNet, EffNetConfig
from maest.model import Maest

out, clips = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True)
torch.manual_seed(0)
labels = ["Rock---Punk", "Electronic---Techno", "Jazz---Bop", "Pop---Ballad", "Classical---Baroque"]
save_native(Maest(MaestConfig(depth=2, width=32, heads=2, num_classes=5, segment_frames=64, labels=labels,
                              train_patchout_time=0, train_patchout_freq=0, name="tiny")), out / "tiny")
torch.manual_seed(1)
save_native(EffNet(EffNetConfig(num_classes=5, width_mult=0.25, depth_mult=0.34, labels=labels)), out / "effnet")
shutil.copytree(clips, out / "clips")
rng = np.random.default_rng(0)
rows = []
for i in range(10):  # head labels: extra generated tones beside the clips
    t = np.arange(16000 * 2) / 16000
    y = 0.3 * np.sin(2 * np.pi * (220 if i % 2 else 1500) * t) + 0.05 * rng.normal(size=t.size)
    sf.write(out / "clips" / f"tone{i}.wav", y.astype(np.float32), 16000)
    rows.append(f"tone{i}.wav\t{'low' if i % 2 else 'high'}")
rows += ["ambience_12s_16k_mono.wav\tlow", "techbattle_30s_44k_stereo.ogg\thigh", "temple_8s_48k_stereo.flac\tlow",
         "imperialarmy_20s_22k_mono.mp3\thigh"]
(out / "head_labels.tsv").write_text("\n".join(rows) + "\n")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from eval_data import tiny_jamendo  # noqa: E402

tiny_jamendo(out / "jamendo")
(out / "done").write_text("")
