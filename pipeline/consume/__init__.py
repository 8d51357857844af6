"""The consume kit: what every Vigil consumer (the worker, the sink) is built from, in the arroyo style.

    Record ─▶ Envelope ─▶ step ─▶ step ─▶ … ─▶ Produce (acks=all) ─▶ Commit     (offsets travel with the envelope)
                            └──────┴──────────▶ DeadLetters ──────────▶ Commit     (original bytes, error in headers)

- ``ProcessingStep``: ``submit`` (raise ``MessageRejected`` when full), ``poll`` (never blocks), ``join(timeout)``,
  ``close``, ``terminate``; a full step makes the ``GroupMember`` hold the record and pause its partitions.
- ``OffsetTracker`` / ``Commit``: an offset is committed only after its output is durable, as part of the
  contiguous done prefix of its partition; work of a revoked assignment is never committed.
- ``GroupMember``: the consumer's loop on one thread: rebalances applied there, a watchdog replacing a member stuck
  in a rebalance, lag gauges, SIGTERM → steps joined, the unfinished terminated (redelivered), the rest committed.
- ``read_dead_letters`` / ``replay``: what ``vigil dlq`` is made of.
"""
from __future__ import annotations

from ._backoff import Backoff
from ._dead_letters import HEADER_PREFIX, ReplayOutcome, dead_letter_headers, parse_dead_letter, read_dead_letters, replay
from ._member import LAG_INTERVAL_S, GroupMember, GroupWatchdog, RebalanceEvents
from ._offsets import COMMIT_TIMEOUT_MS, Commit, OffsetTracker, commit_offsets, describe
from ._produce import DeadLetters, OutgoingMessage, Produce
from ._steps import Envelope, Failure, MessageRejected, ProcessingStep, Record

__all__ = [
    "MessageRejected", "ProcessingStep", "Record", "Envelope", "Failure",
    "Backoff", "OffsetTracker", "commit_offsets", "Commit", "describe", "COMMIT_TIMEOUT_MS",
    "OutgoingMessage", "Produce", "DeadLetters",
    "RebalanceEvents", "GroupWatchdog", "GroupMember", "LAG_INTERVAL_S",
    "HEADER_PREFIX", "dead_letter_headers", "parse_dead_letter", "read_dead_letters", "replay", "ReplayOutcome",
]
