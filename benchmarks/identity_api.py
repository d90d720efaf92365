"""API part of benchmarks/check_identical.sh: pipeline.embed/predict/tag results saved as .npy/.json."""

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from maest.heads import tag_with_head
from maest.inference import load_model

fixtures, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True)
clip = fixtures / "clips" / "techbattle_30s_44k_stereo.ogg"
p = load_model(fixtures / "tiny", device="cpu")
np.save(out / "embed.npy", p.embed(clip, blocks=2))
e, s = p.embed(clip, per_segment=True, blocks=1, tokens=("avg",), segments="original")
np.save(out / "embed_seg.npy", e)
np.save(out / "embed_seg_starts.npy", s)
wave, rate = sf.read(fixtures / "clips" / "temple_8s_48k_stereo.flac", dtype="float32")
np.save(out / "embed_wave.npy", p.embed(wave.mean(axis=1), sample_rate=rate, patchout_time=2, blocks=2))
np.save(out / "predict.npy", p.predict(clip, crop="center"))
(out / "tag.json").write_text(json.dumps(p.tag(clip, top_k=None)))
(out / "tag_head.json").write_text(json.dumps(tag_with_head(p, clip, out.parent / "head")[:5]))
fx = load_model(fixtures / "effnet", device="cpu")
np.save(out / "effnet_embed.npy", fx.embed(clip))
