"""Airflow cluster policy (entry point ``airflow.policy``, loaded by every Airflow process where Vigil is installed):
a Vigil task whose pool does not exist fails at once instead of staying `scheduled` until the run times out.

Airflow calls `task_instance_mutation_hook` in the scheduler inside its transaction. For a policy from an entry point
(no airflow_local_settings) Airflow 3.3 skips the hook when it first inserts a run's task instances and calls it when
a mapped task expands; Vigil's pooled tasks are all mapped (test_dag_conventions), so each is caught as soon as its
upstream has said how many it needs. The hook reads the pool through that transaction's session (never a session
of its own), and for a task instance not yet queued whose ``vigil-`` pool is absent it sets the state to failed, logs
an error and notes the run, each naming the pool and the import command.
Downstream tasks then fail as upstream_failed and the run ends within a scheduler loop or two.

Anything unexpected here is logged and ignored: a policy must never break the scheduler.
"""
from __future__ import annotations

import logging
from typing import Any

from airflow.policies import hookimpl

from . import missing_pool_message

logger = logging.getLogger(__name__)

#: the prefix of Vigil's pools (`pipeline._platforms.pool_name`); other DAGs' pools are left alone
PREFIX = "vigil-"
#: states in which a task instance waits for a slot (a missing pool would hold it there forever)
_WAITING = (None, "scheduled")


@hookimpl
def task_instance_mutation_hook(task_instance: Any, dag_run: Any = None) -> None:
    try:
        _fail_without_pool(task_instance, dag_run)
    except Exception:  # noqa: BLE001 - a policy must never break the scheduler
        logger.warning("vigil pool policy: could not check %s", getattr(task_instance, "pool", "?"), exc_info=True)


def _fail_without_pool(ti: Any, dag_run: Any) -> None:
    pool = getattr(ti, "pool", None)
    if not pool or not str(pool).startswith(PREFIX) or dag_run is None:
        return
    state = getattr(ti, "state", None)
    if (state.value if hasattr(state, "value") else state) not in _WAITING:
        return
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    from airflow.models.pool import Pool
    from airflow.utils.state import TaskInstanceState

    session = object_session(dag_run)
    if session is None:
        return
    with session.no_autoflush:
        if session.scalar(select(Pool.id).where(Pool.pool == pool)) is not None:
            return
    task = f"{ti.task_id}" + (f"[{ti.map_index}]" if getattr(ti, "map_index", -1) >= 0 else "")
    message = missing_pool_message(pool, f"{ti.dag_id}.{task}")
    ti.state = TaskInstanceState.FAILED
    logger.error("%s", message)
    if not getattr(dag_run, "note", None):
        dag_run.note = message
