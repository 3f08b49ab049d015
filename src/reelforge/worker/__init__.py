"""Workers: the durable state machine that moves a video from queued to a result.

Each saq job reads the record and continues from its stage, so a job picked up
again after its worker died resumes where the record says: a stored remote id is
polled, never submitted again. Every step is written to Redis (``store.transition``)
before the next side effect starts.

Two ways a turn ends early that are nobody's failure:

* **The worker died.** Each turn claims the video in Redis and clears the claim
  when it ends; a claim left by another process means that process died mid-turn.
  That counts a ``worker_restart`` (capped by ``max_worker_restarts``, then the
  video fails with ``worker_lost``), never a provider attempt, a breaker failure or
  a provider error. An in-process provider's job (``local``) died with its worker,
  so its attempt is ended as ``worker_lost`` and a fresh one started; a remote
  provider's job lives on and is polled.
* **The video was deleted** (or its record is unreadable). The turn stops the
  provider's job, frees its capacity slot, removes the video's directories and
  ends quietly, without retries: nothing writes the record back.

    generate queue:  queued ▸ submitting ▸ generating ▸ downloading ─┐
    process queue:   processing ▸ validating ▸ completed   ◀─────────┘
"""

from reelforge.worker.process import WorkerProcess, generate_video, process_video
from reelforge.worker.run import WORKER_LOST, falls_over, lost_to_worker

__all__ = [
    "WORKER_LOST",
    "WorkerProcess",
    "falls_over",
    "generate_video",
    "lost_to_worker",
    "process_video",
]
