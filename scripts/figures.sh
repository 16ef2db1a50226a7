#!/usr/bin/env bash
# Regenerate docs/figures.md: build (or reuse) the reference model, run example_suite/ on it with a
# report, and render every gate figure and recorded table of that run.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
REFERENCE="${MANGAASSIST_REFERENCE:-$ROOT/artifacts/reference}"
REPORT="$(mktemp -d)"
python -m mangaassist_reference build --out "$REFERENCE"
python -m pytest example_suite -q \
    --model-path="$REFERENCE/finetuned" --pretrained-path="$REFERENCE/pretrained" \
    --baseline-path="$REFERENCE/previous" --validation-set="$REFERENCE/data/valid.jsonl" \
    --traffic="$REFERENCE/data/traffic.jsonl" --mangaassist-report="$REPORT" "$@" || true  # the page records failures too
python scripts/figures.py "$REPORT/results.json" "$REFERENCE/build.json" > "$ROOT/docs/figures.md"
echo "wrote $ROOT/docs/figures.md (report: $REPORT/report.html)"
