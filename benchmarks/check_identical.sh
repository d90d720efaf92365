#!/usr/bin/env bash
# Bit-identity check (issue 17): run the same CLI/API commands with two source trees and compare every output.
#   benchmarks/check_identical.sh OLD_SRC NEW_SRC WORK_DIR
# e.g. benchmarks/check_identical.sh /work/ref/src "$PWD/src" /tmp/ident
# Fixtures (tiny random-weight MAEST + EffNet, a tiny MTG-Jamendo-like set, a head label file) are made
# once with OLD_SRC; both runs read the same ones. Arrays must be equal exactly; JSON/CSV/TSV text is
# compared after dropping timing and path fields (benchmarks/compare_outputs.py).
set -u
OLD=$1; NEW=$2; WORK=$3
HERE=$(cd "$(dirname "$0")" && pwd)
CLIPS=${CLIPS:-/work/shared/data/audio}
mkdir -p "$WORK"
if [ ! -f "$WORK/fixtures/done" ]; then
  rm -rf "$WORK/fixtures"
  PYTHONPATH=$OLD python "$HERE/identity_fixtures.py" "$WORK/fixtures" "$CLIPS" || exit 1
fi
F=$WORK/fixtures
run_all() {  # $1: src, $2: output folder
  local S=$1 O=$2
  rm -rf "$O"; mkdir -p "$O"
  export PYTHONPATH=$S
  local M="--model $F/tiny --device cpu --no-progress --blocks 2"
  m() { python -m maest.cli "$@"; }
  {
  m embed $F/clips -o $O/embed_npy $M --decode-workers 0
  m embed $F/clips -o $O/embed_npz --format npz --per-segment $M --decode-workers 2
  m embed $F/clips -o $O/embed_parquet --format parquet --per-segment $M --decode-workers 0
  m embed $F/clips -o $O/embed_patchout --patchout-time 2 --patchout-freq 0,3 --tokens cls,avg $M --blocks 1 --decode-workers 0
  m embed $F/clips -o $O/embed_original --segments original $M --decode-workers 0 --format npz
  m embed $F/clips -o $O/embed_crop --crop center --overlap 0.25 $M --decode-workers 0 --format npz
  m embed $F/clips -o $O/embed_effnet --model $F/effnet --blocks 2 --device cpu --no-progress --decode-workers 0 --format npz --per-segment
  m tag $F/clips --model $F/tiny --device cpu --format json --top-k 3 > $O/tag.json
  m tag $F/clips --model $F/tiny --device cpu --format tsv --top-k 5 --segments original > $O/tag.tsv
  m tag $F/clips --model $F/effnet --device cpu --format json --top-k 3 > $O/tag_effnet.json
  m head fit $F/head_labels.tsv -o $O/head --audio-root $F/clips --model $F/tiny --blocks 2 --device cpu --no-progress --decode-workers 0 --validation 0.4
  m tag $F/clips --head $O/head --device cpu --format json > $O/tag_head.json
  m tag $F/clips --head $O/head --device cpu --format tsv > $O/tag_head.tsv
  m eval mtg-jamendo-genre --metadata $F/jamendo/splits --audio-root $F/jamendo/audio -o $O/eval $M --epochs 2 --probe-workers 1 --seed 0
  m experiment blocks mtg-jamendo-genre --metadata $F/jamendo/splits --audio-root $F/jamendo/audio -o $O/exp_blocks --model $F/tiny --device cpu --no-progress --blocks 1-2 --tokens c,cda --epochs 2 --probe-workers 1
  m index build $O/embed_npy -o $O/index
  m similar ambience_12s_16k_mono --index $O/index -k 3 --format tsv > $O/similar_key.tsv
  m similar $CLIPS/temple_8s_48k_stereo.flac --index $O/index -k 3 --format tsv --device cpu > $O/similar_audio.tsv
  python "$HERE/identity_api.py" $F $O/api
  } > $O/log.txt 2>&1
  echo "ran with $S -> $O (log: $O/log.txt)"
}
# KEEP_OLD=1 reuses an existing $WORK/old (the reference run does not change).
if [ "${KEEP_OLD:-0}" != 1 ] || [ ! -d "$WORK/old" ]; then run_all "$OLD" "$WORK/old"; fi
run_all "$NEW" "$WORK/new"
PYTHONPATH=$NEW python "$HERE/compare_outputs.py" "$WORK/old" "$WORK/new"
