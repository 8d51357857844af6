"""The Airflow side never imports the detectors: DAG files and the pipeline modules they use load without them. The one
part of the package they load is ``detectors.configs`` (the detector sections of Settings: pydantic only) with the
package's lazy ``__init__``."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib.util, sys
from pathlib import Path
import pipeline, pipeline.crawl, pipeline.spread, pipeline.alerts, pipeline.kibana, pipeline._media_store
for dag_file in sorted(Path("dags").glob("*.py")):
    spec = importlib.util.spec_from_file_location(f"dag_{dag_file.stem}", dag_file)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
allowed = {"detectors", "detectors.configs"}
leaked = sorted(m for m in sys.modules if (m == "detectors" or m.startswith("detectors.") or m in ("mediapipe", "transformers", "torch"))
                and m not in allowed)
print("LEAKED:" + ",".join(leaked))
"""


def test_dags_and_airflow_side_modules_load_without_detectors(tmp_path: Path) -> None:
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    leaked = next(line for line in result.stdout.splitlines() if line.startswith("LEAKED:"))
    assert leaked == "LEAKED:", f"the Airflow side imported worker-side packages: {leaked}"


def test_the_contracts_and_the_dag_face_load_no_kafka_or_elasticsearch_client(tmp_path: Path) -> None:
    """`import pipeline` (every Airflow process, for the cluster policy), the contracts layer and the face DAG files
    import load neither client: the names of `pipeline` load on first use."""
    probe = ("import sys; import pipeline, pipeline.contracts, pipeline.airflow, pipeline.pools; "
             "pipeline.contracts.Settings(); "
             "print('LOADED:' + ','.join(sorted(m for m in ('elasticsearch', 'kafka', 'detectors._base', 'torch') "
             "if m in sys.modules)))")
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED:\n" in result.stdout + "\n", result.stdout
    # and the names are all there, loaded when asked for
    import pipeline
    import pipeline.contracts

    assert {"Settings", "make_es_client", "run_setup", "ResultMessage"} <= set(dir(pipeline))
    assert pipeline.Settings is pipeline.contracts.Settings
