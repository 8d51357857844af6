"""import-linter contract types of Vigil's own (``[tool.importlinter]`` in pyproject.toml names them).

``private_modules``: no module imports a private module (a path segment starting with ``_``, dunders aside) of
another top-level package. Within a package its private modules are its own business; across packages only the
public faces (``pipeline.contracts``, ``pipeline.airflow``, a package's ``__init__``) are imported. grimp reads every
import statement, inside functions included.
"""
from __future__ import annotations

from typing import Any

from importlinter import Contract, ContractCheck, fields, output


def _private(module: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in module.split(".")[1:])


class PrivateModulesContract(Contract):
    """Modules of ``packages`` import no other top-level package's private modules."""

    type_name = "private_modules"

    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: Any, verbose: bool) -> ContractCheck:
        packages = [str(p) for p in self.packages]  # type: ignore[attr-defined]
        broken: list[dict[str, Any]] = []
        for importer in sorted(graph.modules):
            top = importer.split(".")[0]
            if top not in packages:
                continue
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                if imported.split(".")[0] == top or imported.split(".")[0] not in packages or not _private(imported):
                    continue
                lines = sorted({d["line_number"] for d in graph.get_import_details(importer=importer,
                                                                                   imported=imported)})
                broken.append({"importer": importer, "imported": imported, "lines": lines})
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for item in check.metadata["broken"]:
            lines = ", ".join(f"l.{n}" for n in item["lines"])
            output.print_error(f"{item['importer']} imports the private {item['imported']} ({lines})", bold=False)
            output.new_line()
