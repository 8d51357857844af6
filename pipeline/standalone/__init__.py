"""`vigil standalone`: the main job on one machine, as one process tree.

    supervisor (this process)
    ├── infra/local/stack up        only when VIGIL_ES_URL is unset (Kafka + Elasticsearch on 127.0.0.1)
    ├── vigil setup                 in-process, idempotent
    ├── vigil sink                  child, restarted if it dies
    ├── vigil worker                child, restarted if it dies
    ├── vigil console               child (http://127.0.0.1:8080 by default)
    └── vigil crawl / spread / alerts   children on timers (the same pipeline cycle functions the DAGs call)

Every child runs in a process group of its own, and gets SIGTERM should the supervisor be killed; Ctrl-C (SIGINT) or SIGTERM stops the cycles, the console, the
worker and the sink in that order, each group with SIGTERM, then SIGKILL after a grace period: nothing is left.
"""
from __future__ import annotations

from ._supervisor import Child, Cycle, Supervisor, cycle_python, run_standalone

__all__ = ["run_standalone", "Supervisor", "Child", "Cycle", "cycle_python"]
