"""Vigil's manipulation detectors (worker side: torch, transformers, face landmarks, PyAV).

Every detector follows one interface shaped like a transformers ``Pipeline`` (preprocess → forward → postprocess);
see ../shared/DESIGN.md. Nothing in ``pipeline`` that DAGs import may import this package.
"""
