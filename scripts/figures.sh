#!/usr/bin/env bash
# Regenerate the figures of the reference build: build (or reuse) the reference model, store its golden-set
# figures in example_suite/mangaassist-snapshot.json (the snapshot the regression gate compares the next build
# with), run example_suite/ on it with a report, render every gate figure and recorded table of that run in
# docs/figures.md, and the failure-slice loop's figures in docs/slices.md (scripts/slice_loop.py; set
# MANGAASSIST_PRODUCTION to the model before a retrain to recompute its side and the paired comparisons).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
REFERENCE="${MANGAASSIST_REFERENCE:-$ROOT/artifacts/reference}"
REPORT="$(mktemp -d)"
MODEL_OPTIONS=(--model-path="$REFERENCE/finetuned" --pretrained-path="$REFERENCE/pretrained"
               --production-path="$REFERENCE/previous" --validation-set="$REFERENCE/data/valid.jsonl"
               --traffic="$REFERENCE/data/traffic.jsonl")
python -m mangaassist_reference build --out "$REFERENCE"
python -m pytest example_suite/test_regression_snapshot.py -q "${MODEL_OPTIONS[@]}" --mangaassist-update-snapshot
python -m pytest example_suite -q "${MODEL_OPTIONS[@]}" --mangaassist-report="$REPORT" "$@" \
    || true  # the page records failures too
python scripts/figures.py "$REPORT/results.json" "$REFERENCE/build.json" > "$ROOT/docs/figures.md"
python scripts/slice_loop.py "$REFERENCE" ${MANGAASSIST_PRODUCTION:+--production "$MANGAASSIST_PRODUCTION"}
echo "wrote $ROOT/docs/figures.md, docs/slices.md and example_suite/mangaassist-snapshot.json (report: $REPORT/report.html)"
