"""What a DAG parse costs: Airflow's own start in a fresh interpreter (it loads Vigil's cluster policy,
``pipeline.pools``, through its entry point), then each of Vigil's DAG files parsed by Airflow's DagBag (as a DAG
processor does), and what importing ``pipeline``, ``pipeline.pools`` and ``pipeline.airflow`` alone costs: wall
time of the import in a fresh interpreter, the median of ``--runs``.

    python bench/dag_parse.py              # Airflow environment; about a minute
    cd <a checkout of an older commit> && python /path/to/bench/dag_parse.py --root .   # the same for that code
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PARSE = """
import json, sys, time
started = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
loaded = time.perf_counter()
bag = DagBag(sys.argv[1])
print(json.dumps({"airflow": loaded - started, "seconds": time.perf_counter() - loaded, "dags": len(bag.dags),
                  "errors": len(bag.import_errors), "pipeline": sys.modules["pipeline"].__file__}))
"""
IMPORT = "import sys, time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def import_seconds(module: str, root: Path) -> float:
    """Wall seconds of ``import module`` in a fresh interpreter started in ``root`` (its code first on the path)."""
    out = subprocess.run([sys.executable, "-c", IMPORT.format(module=module)], capture_output=True, text=True,
                         check=True, cwd=root).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose dags/ and pipeline/ are timed")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    root = args.root.resolve()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="vigil-dagparse-") as home:
        env = {**os.environ, "AIRFLOW_HOME": home, "PYTHONPATH": str(root)}
        starts = []
        for path in sorted((root / "dags").glob("*.py")):
            times = []
            for _ in range(args.runs):
                out = subprocess.run([sys.executable, "-c", PARSE, str(path)], capture_output=True, text=True,
                                     env=env, cwd=root, check=True).stdout
                result = json.loads(out.strip().splitlines()[-1])
                assert result["dags"] == 1 and result["errors"] == 0, (path, result)
                assert result["pipeline"].startswith(str(root)), result["pipeline"]
                times.append(result["seconds"])
                starts.append(result["airflow"])
            figures[path.stem] = round(statistics.median(times), 3)
            print(f"{path.name}: parsed in {figures[path.stem] * 1000:.0f} ms (median of {args.runs})")
        figures["airflow start"] = round(statistics.median(starts), 3)
        print(f"Airflow's start (DagBag imported, the cluster policy with it): {figures['airflow start'] * 1000:.0f} ms")
    for module in ("pipeline", "pipeline.pools", "pipeline.airflow"):
        try:
            figures[f"import {module}"] = round(statistics.median(import_seconds(module, root)
                                                                  for _ in range(args.runs)), 3)
        except subprocess.CalledProcessError:
            continue
        print(f"import {module}: {figures[f'import {module}'] * 1000:.0f} ms")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
