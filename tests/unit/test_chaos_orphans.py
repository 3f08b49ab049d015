"""The chaos report's one allowance for vendors without idempotency keys: a job left
behind by a worker killed during the submit call, resubmitted once its claim lapsed.
Anything else that looks like it must still count as an extra vendor job."""

from __future__ import annotations

from tests.chaos_vendors import CLAIM_SECONDS, SeenJob, orphaned_by_a_kill

T0 = 1_000_000.0


def _jobs(*, orphan_polled: bool = False, gap: float = CLAIM_SECONDS) -> list[SeenJob]:
    return [
        SeenJob("luma", "gen-1", T0, polled=orphan_polled),
        SeenJob("luma", "gen-2", T0 + gap, polled=True),
    ]


ATTEMPTS = [{"provider": "luma", "remote_id": "gen-2"}]


def test_a_job_cut_off_by_a_kill_and_resubmitted_after_the_claim_is_an_orphan() -> None:
    (orphan,) = orphaned_by_a_kill(_jobs(), ATTEMPTS, worker_kills=[T0 + 0.3])
    assert orphan.id == "gen-1"


def test_without_a_worker_kill_near_it_a_second_job_is_no_orphan() -> None:
    assert orphaned_by_a_kill(_jobs(), ATTEMPTS, worker_kills=[T0 + 5.0]) == []


def test_a_second_submit_sooner_than_the_claim_allows_is_a_duplicate() -> None:
    jobs = _jobs(gap=1.0)  # two runs racing: the claim should have stopped the second
    assert orphaned_by_a_kill(jobs, ATTEMPTS, worker_kills=[T0 + 0.3]) == []


def test_a_job_the_service_polled_is_no_orphan() -> None:
    jobs = _jobs(orphan_polled=True)
    assert orphaned_by_a_kill(jobs, ATTEMPTS, worker_kills=[T0 + 0.3]) == []


def test_the_job_an_attempt_recorded_is_never_an_orphan() -> None:
    attempts = [{"provider": "luma", "remote_id": "gen-1"}, *ATTEMPTS]
    assert orphaned_by_a_kill(_jobs(), attempts, worker_kills=[T0 + 0.3]) == []


def test_an_orphan_needs_its_resubmit_at_the_same_vendor() -> None:
    jobs = [SeenJob("luma", "gen-1", T0, polled=False), SeenJob("fal", "req-2", T0 + 20, True)]
    attempts = [{"provider": "fal", "remote_id": "fal-ai/x/requests/req-2"}]
    assert orphaned_by_a_kill(jobs, attempts, worker_kills=[T0 + 0.3]) == []
