"""metrics.HttpTally: the lane's per-request figures reach Prometheus in
batches, exactly, and nothing it holds grows past a batch."""

from __future__ import annotations

from proxy import metrics


def _now() -> tuple[float, float, float, float]:
    return (
        metrics.HTTP_PROXIED._value.get(),
        metrics.HTTP_TO_CLIENT._value.get(),
        metrics.HTTP_TO_UPSTREAM._value.get(),
        metrics.UPSTREAM_SECONDS._sum.get(),
    )


def test_figures_reach_prometheus_on_flush_and_not_before() -> None:
    tally = metrics.HttpTally(batch=100)
    before = _now()
    for _ in range(3):
        tally.responded(0.5)
        tally.to_client += 10
        tally.to_upstream += 4
        tally.request_done()
    assert _now() == before  # held until a flush
    tally.flush()
    after = _now()
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 30, 12, 1.5]
    tally.flush()
    assert _now() == after  # a second flush adds nothing


def test_a_full_batch_flushes_itself() -> None:
    tally = metrics.HttpTally(batch=4)
    before = _now()
    for _ in range(4):
        tally.to_client += 1
        tally.request_done()
    assert _now()[0] - before[0] == 4
    assert _now()[1] - before[1] == 4
    assert tally.requests == 0 and tally.to_client == 0


def test_responses_without_completed_requests_do_not_pile_up() -> None:
    tally = metrics.HttpTally(batch=4)
    before = _now()
    for _ in range(9):  # heads that came, bodies that never finished
        tally.responded(1.0)
    assert len(tally.upstream_seconds) == 1
    assert _now()[3] - before[3] == 8.0
