"""Synthetic production traffic for the reference model: unlabelled JSON Lines, a month of messages.

Messages are the corpus generator's phrasings (corpus.Sampler: slots, greetings, sign-offs, case, typos)
with the production class mix (corpus.INTENT_SHARE, multi-intent messages included), a fifth of them from
the held-out side of the template split (phrasings and titles the model never trained on), then more of
what real traffic has: romanized-Japanese code-switching (domain.CODE_SWITCHES) and extra typos. Each
record: {"id", "timestamp" (October 2026, in order), "channel" (web, app, line), "text"}; no label.

Fast enough for 10^6 messages in seconds: a pool of distinct messages is drawn with the corpus sampler
once, then messages are drawn from the pool with numpy and only the decorated ones are rebuilt.

    python -c "from mangaassist_reference.traffic import write_traffic; write_traffic('t.jsonl', 10**6)"
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from pytest_mangaassist.domain import CODE_SWITCHES
from .corpus import INTENT_SHARE, MULTI_INTENT_SHARE, Sampler, _slice_weights

TRAFFIC_MESSAGES = 20_000  # what the reference build writes to DIR/data/traffic.jsonl
POOL_SIZE = 20_000
HELD_OUT_SHARE = 0.2  # of the pool: phrasings and titles from the golden side of the split
CODE_SWITCH_SHARE = 0.08
TYPO_SHARE = 0.05
CHANNELS = ("web", "app", "line")
CHANNEL_SHARE = (0.55, 0.35, 0.10)
MONTH_START = np.datetime64("2026-10-01T00:00:00")
MONTH_SECONDS = 31 * 86400


def _draw(sampler: Sampler, n: int) -> list[str]:
    """n messages with the corpus' intent, slice and multi-intent mix (texts only: traffic has no labels)."""
    rng = sampler.rng
    intents, weights = zip(*INTENT_SHARE.items())
    out = []
    for _ in range(n):
        if rng.random() < MULTI_INTENT_SHARE:
            out.append(sampler.multi_intent().text)
        else:
            intent = rng.choices(intents, weights)[0]
            slices, slice_weights = zip(*_slice_weights(sampler, intent).items())
            out.append(sampler.message(intent, rng.choices(slices, slice_weights)[0]).text)
    return out


def message_pool(seed: int, size: int = POOL_SIZE) -> list[str]:
    held_out = round(size * HELD_OUT_SHARE)
    return _draw(Sampler(seed, golden=False), size - held_out) + _draw(Sampler(seed + 1, golden=True), held_out)


def code_switch(text: str, rng: random.Random) -> str:
    """One English fragment the message has, in romanized Japanese (or a Japanese sign-off when it has none)."""
    lowered = text.lower()
    present = [(en, jp) for en, jp in CODE_SWITCHES if f" {en} " in f" {lowered} "]
    if not present:
        return f"{text} {rng.choice(('onegaishimasu', 'arigatou', 'sumimasen'))}"
    english, romaji = rng.choice(present)
    start = f" {lowered} ".index(f" {english} ")
    return text[:start] + romaji + text[start + len(english):]


def typo(text: str, rng: random.Random) -> str:
    """Two neighbouring letters of one longer word swapped, as corpus.Sampler.typo does."""
    words = text.split(" ")
    long_words = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not long_words:
        return text
    i = rng.choice(long_words)
    j = rng.randrange(len(words[i]) - 1)
    w = words[i]
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def traffic_lines(n: int, seed: int = 0, pool_size: int = POOL_SIZE) -> list[str]:
    """n JSON Lines records (without line ends), deterministic in seed."""
    pool = message_pool(seed, min(pool_size, max(n, 1)))
    dumped = [json.dumps(t, ensure_ascii=False) for t in pool]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(pool), size=n)
    switched = rng.random(n) < CODE_SWITCH_SHARE
    typos = rng.random(n) < TYPO_SHARE
    channels = rng.choice(len(CHANNELS), size=n, p=CHANNEL_SHARE)
    stamps = (MONTH_START + np.sort(rng.integers(0, MONTH_SECONDS, size=n)).astype("timedelta64[s]")).astype(str)
    edits = random.Random(seed)
    out = []
    for i in range(n):
        text = dumped[picks[i]]
        if switched[i] or typos[i]:
            raw = pool[picks[i]]
            raw = code_switch(raw, edits) if switched[i] else raw
            text = json.dumps(typo(raw, edits) if typos[i] else raw, ensure_ascii=False)
        out.append(f'{{"id": {i}, "timestamp": "{stamps[i]}Z", "channel": "{CHANNELS[channels[i]]}", "text": {text}}}')
    return out


def write_traffic(path: str | Path, n: int = TRAFFIC_MESSAGES, seed: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(traffic_lines(n, seed)) + "\n", encoding="utf-8")
    tmp.replace(path)  # a build interrupted while writing leaves no half file under the final name
    return path
