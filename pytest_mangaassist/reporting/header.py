"""The run's header lines (pytest_report_header): the model, the golden set, the artifacts, the traffic, the
tiers and the cache in force. Cheap: no model forward, no torch or transformers import."""

from __future__ import annotations

from pathlib import Path

from ..config.settings import Settings


def header_lines(config, settings: Settings, traffic) -> list[str] | None:
    """The header's lines; None without a model under test. `traffic` is the run's loaded --traffic."""
    if settings.model is None:
        return None
    lines = [f"mangaassist: model {settings.model.path} ({settings.model.model_type}, "
             f"{len(settings.model.labels)} labels)"]
    if settings.golden_set is not None:
        facts = [f"{len(settings.golden_set)} examples"]
        if settings.allow_duplicates:
            facts.append(f"{settings.golden_set.duplicate_count} duplicate(s) allowed")
        cut = truncated_count(settings)
        if cut is not None:
            from ..loading.model import DEFAULT_MAX_LENGTH

            facts.append(f"{cut} cut at {DEFAULT_MAX_LENGTH} tokens")
        lines.append(f"mangaassist: golden set {settings.golden_set.source} ({', '.join(facts)})")
    for what, path in (("onnx", settings.onnx_path), ("serving artifact", settings.serving_artifact)):
        if path is not None:
            lines.append(f"mangaassist: {what} {path}")
    if traffic is not None:
        lines.append(f"mangaassist: traffic {traffic.source} ({len(traffic):,} messages in {len(traffic.shards)} "
                     f"shard(s), field {traffic.text_field!r}, {traffic.engine} engine)")
    if settings.tiers:
        lines.append(f"mangaassist: gate tiers {', '.join(settings.tiers)}")
    if settings.no_cache:
        lines.append("mangaassist: no disk cache (--mangaassist-no-cache)")
    elif getattr(config, "cache", None) is not None:
        from ..cache.store import key_source

        lines.append(f"mangaassist: cache signed with {key_source()}")
    return lines


def truncated_count(settings: Settings) -> int | None:
    """How many golden texts the tokenizer cuts at the model's max_length (tokenizer.json only, no model
    forward, no transformers import); None where it cannot be told cheaply."""
    if settings.model is None or settings.golden_set is None:
        return None
    tokenizer_file = Path(settings.model.path) / "tokenizer.json"
    if not tokenizer_file.is_file():
        return None
    try:
        from tokenizers import Tokenizer

        from ..loading.model import DEFAULT_MAX_LENGTH, counting_prefix

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        texts = [counting_prefix(text, DEFAULT_MAX_LENGTH) for text in settings.golden_set.texts]
        encodings = tokenizer.encode_batch(texts)
        return sum(len(e.ids) > DEFAULT_MAX_LENGTH for e in encodings)
    except Exception:  # a header line must never break a run; the model's own loading reports a bad tokenizer
        return None
