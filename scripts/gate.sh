#!/usr/bin/env bash
# The main job: build the reference MangaAssist model if needed, then run the example gate suite on it.
# Extra arguments go to pytest (e.g. -x, -k jp_en).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
REFERENCE="${MANGAASSIST_REFERENCE:-$ROOT/artifacts/reference}"
python -m mangaassist_reference build --out "$REFERENCE"
# --option=value keeps the model paths out of pytest's rootdir search, so example_suite/pytest.ini applies
exec python -m pytest example_suite \
    --model-path="$REFERENCE/finetuned" \
    --pretrained-path="$REFERENCE/pretrained" \
    --production-path="$REFERENCE/previous" \
    --validation-set="$REFERENCE/data/valid.jsonl" \
    --traffic="$REFERENCE/data/traffic.jsonl" \
    "$@"
