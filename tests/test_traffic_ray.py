"""The Ray engine (issue #15): Ray Data on a local cluster gives exactly the embedded engine's predictions and
figures on the same traffic. One test, one Ray start-up (seconds of the machine's cores): the start-up checks
of the Ray options (Ray missing, an unreachable address) are in test_traffic.py and start no cluster."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mangaassist_reference.traffic import write_traffic
from pytest_mangaassist import MANGAASSIST_ROUTING, IntentModel, load_traffic
from pytest_mangaassist.analysis.traffic import compare_routes
from pytest_mangaassist.cache.traffic import served_model
from pytest_mangaassist.loading.replay import predict_embedded, predict_ray

pytest.importorskip("ray.data")


def test_ray_and_embedded_engines_give_the_same_figures(small_reference, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    folder = tmp_path / "logs"
    write_traffic(folder / "week1.jsonl", 150, seed=2)
    records = [json.loads(line) for line in write_traffic(tmp_path / "w2.jsonl", 120, seed=3).read_text().splitlines()]
    pq.write_table(pa.table({key: [r[key] for r in records] for key in records[0]}), folder / "week2.parquet")
    traffic = load_traffic(folder)
    models = [IntentModel.load(small_reference / name) for name in ("previous", "finetuned")]
    served = [served_model(model, tmp_path / "exports") for model in models]
    shards = list(range(len(traffic.shards)))

    embedded = predict_embedded(served, traffic, shards)
    on_ray = predict_ray(served, traffic.with_engine("ray"), shards)

    assert set(embedded) == set(on_ray) == {(m, s) for m in (0, 1) for s in shards}
    for key, predictions in embedded.items():  # every message, to the bit, in shard order
        assert np.array_equal(predictions.intents, on_ray[key].intents), key
        assert np.array_equal(predictions.confidences, on_ray[key].confidences), key

    def figures(predictions):
        joined = [tuple(np.concatenate([getattr(predictions[(m, s)], f) for s in shards])
                        for f in ("intents", "confidences")) for m in (0, 1)]
        comparison = compare_routes(models[0].labels, MANGAASSIST_ROUTING, *joined)
        return comparison.flip_rate(), comparison.flip_matrix(), comparison.route_shifts()

    (rate_e, matrix_e, shifts_e), (rate_r, matrix_r, shifts_r) = figures(embedded), figures(on_ray)
    assert (rate_e.estimate, rate_e.low, rate_e.high) == (rate_r.estimate, rate_r.low, rate_r.high)
    assert np.array_equal(matrix_e, matrix_r) and shifts_e == shifts_r
    assert len(traffic) == 270 and matrix_e.sum() == 270
