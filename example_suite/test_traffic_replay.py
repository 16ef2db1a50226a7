"""Monthly shadow replay: the candidate (--model-path) against the model in production (--production-path) on
last month's unlabelled traffic (--traffic; for the reference model, the 20,000 synthetic messages its build
writes to DIR/data/traffic.jsonl).

A golden set of a few hundred messages cannot show what a retrain does to a month of traffic: here every
message goes through both models' ONNX exports (what is served), routes follow the routing policy (promotion
auto-routes only at >= 0.75, else commerce support), and the gates bound how many messages change route and
how far each route's share of traffic moves. Predictions are cached per (model, shard), so next month's
candidate replays only its own side. The flip matrix and the routes' shares are recorded in the summary.
"""

import pytest

from pytest_mangaassist import assert_route_shares_stable, assert_traffic_agreement

pytestmark = pytest.mark.gate("monthly")  # tier: every retrain: the candidate against production

# The reference candidate against its previous snapshot (one epoch earlier), on the build's 20,000 messages:
# 2.0% of them change route (409; 95% interval 1.9-2.3%) and no route's share moves by more than 0.7 points
# (checkout_payment gains 129 messages, 50 of them from shipping). The fallback route (promotions below the
# 0.75 threshold) loses half of its 199 messages (97: 33 to product_question, 18 to order_status, 17 each to
# product_discovery and checkout_payment) and takes 31 of promotion's 946: commerce support and promotion are
# the rare routes the verdict names as moved. On the first 1,000, 2,000 and 5,000 messages alone the same
# figures are 1.7%, 1.75% and 1.8%, 0.6, 0.5 and 0.6 points, and 4 of 6, 12 of 20 and 27 of 52 of the
# fallback's messages (12 of 20 is exactly the 0.6 route limit; 6 are too few to gate); on the first 3,000
# (what the plugin's end-to-end test replays) 1.77% and 19 of 36. The limits leave room
# for that and stop a retrain that moves several times more.
MAX_FLIP_RATE = 0.03
MAX_ROUTE_FLIP_RATE = 0.6  # no route may lose more than 60% of its messages to other routes
MAX_SHIFT = 0.01  # one point of traffic: a route's team would see the change in its queue


def test_routes_agree_with_production(intent_model, production_model, traffic, mangaassist_record):
    result = assert_traffic_agreement(intent_model, traffic, against=production_model, max_flip_rate=MAX_FLIP_RATE,
                                      max_route_flip_rate=MAX_ROUTE_FLIP_RATE)
    mangaassist_record(f"traffic replay: flip matrix, production (rows) -> candidate ({result.stats.describe()})",
                       result.flip_matrix_table())


def test_route_shares_are_stable(intent_model, production_model, traffic, mangaassist_record):
    result = assert_route_shares_stable(intent_model, traffic, against=production_model, max_shift=MAX_SHIFT)
    mangaassist_record("traffic replay: route shares, production vs candidate", result.shares_table())
