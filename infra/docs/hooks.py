"""MkDocs hooks: the reference sections that are generated from the code at build time, never written by hand.

    docs page                     marker                      generated from
    operators/configuration.md    <!-- vigil:settings -->     pipeline.Settings (fields, types, defaults, descriptions),
                                                              grouped by the ``# -- section`` comments of _settings.py
    reference/cli.md              <!-- vigil:cli -->          the typer app of pipeline.cli (commands, arguments, options)
    reference/messages.md         <!-- vigil:messages -->     JSON Schemas of pipeline._messages (job, result, dead letter)
    reference/indices.md          <!-- vigil:mappings -->     infra/elasticsearch/index/*.json (index templates)

A page names a section with its marker; the hook replaces the marker with Markdown. An unknown marker, a marker that
no page uses, or a generator that raises fails the build, so `mkdocs build --strict` (infra/docs/build, .ci/run) is the
test of this file. The hooks run where Vigil is installed (infra/install puts MkDocs in the Airflow environment).
"""
from __future__ import annotations

import ast
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"<!--\s*vigil:([a-z_-]+)\s*-->")
_used: set[str] = set()


# -- helpers


def _cell(text: object) -> str:
    """Text fit for one Markdown table cell: one line, pipes escaped outside code spans (inside them a pipe is no
    cell border, and a backslash would show)."""
    parts = re.split(r"(`+[^`]*`+)", " ".join(str(text).split()))
    return "".join(part if part.startswith("`") else part.replace("|", "\\|") for part in parts)


def _code(text: object) -> str:
    """An inline code span that survives any backticks inside it."""
    text = str(text)
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _home(text: str) -> str:
    """Defaults derived from the build machine's home directory, written the way users read them."""
    home = str(Path.home())
    return text.replace(home, "~") if home != "/" else text


# -- settings


def _settings_sections() -> tuple[dict[str, str], dict[str, list[str]]]:
    """Field name -> section title, and section title -> its comment lines, from the ``# --`` comments of the
    Settings class body."""
    source = (ROOT / "pipeline" / "_settings.py").read_text()
    tree = ast.parse(source)
    cls = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings")
    lines = source.splitlines()
    field_line = {node.target.id: node.lineno for node in cls.body
                  if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
    section_of: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    current = "general"
    by_line = {line: name for name, line in field_line.items()}
    in_header = False
    for number in range(cls.lineno, cls.end_lineno + 1):
        stripped = lines[number - 1].strip()
        if stripped.startswith("# --"):
            current = stripped[4:].strip()
            notes.setdefault(current, [])
            in_header = True
            continue
        if in_header and stripped.startswith("#"):
            notes[current].append(stripped.lstrip("#").strip())
            continue
        in_header = False
        if number in by_line:
            section_of[by_line[number]] = current
    return section_of, notes


def _type_name(annotation: Any, metadata: list[Any]) -> str:
    from pydantic import SecretStr

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0], list(args[1:]) + metadata)
    if origin in (typing.Union, types.UnionType):
        rest = [arg for arg in args if arg is not type(None)]
        inner = " or ".join(_type_name(arg, metadata) for arg in rest)
        return f"{inner}, optional" if len(rest) < len(args) else inner
    if origin is typing.Literal:
        return "one of " + ", ".join(_code(arg) for arg in args)
    if origin is list:
        comma = any(type(m).__name__ == "NoDecode" for m in metadata)
        item = _type_name(args[0], []) if args else "str"
        return f"list of {item} ({'comma-separated or JSON' if comma else 'JSON'})"
    if origin is dict:
        return f"JSON object of {_type_name(args[1], [])}" if len(args) == 2 else "JSON object"
    if annotation is SecretStr:
        return "secret"
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(metadata: list[Any]) -> str:
    words = []
    for item in metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            value = getattr(item, attr, None)
            if value is not None:
                words.append(f"{sign} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            words.append(f"matches {_code(pattern)}")
    return ", ".join(words)


def _default(field: Any) -> str:
    from pydantic import SecretStr

    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if value is None or value == [] or value == {}:
        return "–"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, bool):
        return _code(str(value).lower())
    if isinstance(value, (list, dict)):
        if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
            return _code(",".join(f"{v:g}" for v in value))
        return _code(json.dumps(value, ensure_ascii=False))
    if isinstance(value, float):
        return _code(f"{value:g}")
    return _code(_home(str(value)))


def _setting_row(variable: str, anchor: str, field: Any) -> str:
    kind = _type_name(field.annotation, list(field.metadata))
    limits = _constraints(list(field.metadata))
    if limits:
        kind = f"{kind} ({limits})"
    description = _home(field.description or "")
    return (f"| <span id=\"vigil_{anchor}\"></span>`{variable}` | {_cell(kind)} | {_cell(_default(field))} | "
            f"{_cell(description) or '–'} |")


def render_settings() -> str:
    import inspect

    from pipeline import Settings

    section_of, notes = _settings_sections()
    detector_sections = Settings.sections()
    groups: dict[str, list[str]] = {}
    for name, field in Settings.model_fields.items():
        groups.setdefault(section_of.get(name, "general"), []).append(name)
    header = ["| variable | type | default | description |", "|---|---|---|---|"]
    out = [f"All {len(Settings.env_names())} settings of `pipeline.Settings`, generated from "
           "`pipeline/_settings.py` and `detectors/configs.py` when this site was built. The variable is `VIGIL_` + "
           "the field name in capitals; in a YAML file (`VIGIL_CONFIG`) the key is the field name. A detector's "
           "section is a nested model: `VIGIL_<SECTION>_<FIELD>` (or `VIGIL_<SECTION>__<FIELD>`), in YAML a mapping "
           "under the section's name (or the flat key), in code `settings.<section>.<field>`.", ""]
    for section, names in groups.items():
        out += [f"### {section[0].upper()}{section[1:]}", ""]
        if notes.get(section):
            out += [" ".join(notes[section]), ""]
        plain = [name for name in names if name not in detector_sections]
        if plain:
            out += header
            out += [_setting_row(f"VIGIL_{name.upper()}", name, Settings.model_fields[name]) for name in plain]
            out.append("")
        for name in (n for n in names if n in detector_sections):
            config = detector_sections[name]
            summary = " ".join(inspect.cleandoc(config.__doc__ or "").split())
            out += [f"#### `{name}` (`{config.__name__}`)", "", summary, "", *header]
            out += [_setting_row(config.env_name(field), f"{name}_{field}", info)
                    for field, info in config.model_fields.items()]
            out.append("")
    return "\n".join(out)


# -- command line


def _param_type(param: Any, ctx: Any) -> str:
    """The type as `--help` shows it (typer's own parameters describe themselves; plain click ones by name)."""
    if hasattr(param, "display_type"):
        shown = param.display_type(ctx)
    else:
        shown = getattr(getattr(param, "type", None), "name", "")
    return (shown or "").strip("<>[]")


def _param_row(param: Any, ctx: Any) -> str:
    if getattr(param, "param_type_name", "") == "argument":
        name = _code(param.name.upper())
        kind = "argument" + ("" if param.required else ", optional")
        shown_type = _param_type(param, ctx)
        if shown_type:
            kind += f": {shown_type}"
    else:
        names = list(param.opts) + list(param.secondary_opts)
        name = " ".join(_code(n) for n in names)
        kind = "flag" if param.is_flag or getattr(param, "count", False) else (_param_type(param, ctx) or "text")
        if param.multiple:
            kind += ", repeatable"
    if param.nargs == -1:
        kind += ", several"
    default = param.default
    if param.required:
        shown = "required"
    elif callable(default) or default is None or default is False or default in ((), []) or (
            getattr(param, "is_flag", False) and not default):
        shown = "–"
    else:
        shown = _code(_home(str(default)))
    return f"| {name} | {_cell(kind)} | {_cell(shown)} | {_cell(getattr(param, 'help', '') or '–')} |"


def _usage(path: list[str], command: Any) -> str:
    pieces = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if getattr(param, "param_type_name", "") == "argument":
            word = param.name.upper() + ("..." if param.nargs == -1 else "")
            pieces.append(word if param.required else f"[{word}]")
    if any(getattr(p, "param_type_name", "") == "option" for p in command.params):
        pieces.insert(0, "[OPTIONS]")
    if hasattr(command, "commands"):
        pieces.append("COMMAND [ARGS]...")
    return " ".join(path + pieces)


def _context(command: Any, path: list[str]) -> Any:
    """A bare click context for a command (typer ships its own click; either has Context beside Command)."""
    import sys

    module = sys.modules[type(command).__mro__[1].__module__]
    return module.Context(command, info_name=path[-1])


def _walk(path: list[str], command: Any, out: list[str], level: int) -> None:
    title = " ".join(path)
    out += [f"{'#' * level} `{title}`", ""]
    text = (command.help or "").replace("\b\n", "").strip()
    if text:
        out += [text, ""]
    out += ["```text", _usage(path, command), "```", ""]
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    if params:
        out += ["| argument / option | type | default | help |", "|---|---|---|---|"]
        ctx = _context(command, path)
        out += [_param_row(p, ctx) for p in params]
        out.append("")
    children = getattr(command, "commands", {})
    if children:
        out += ["| command | what it does |", "|---|---|"]
        for name, child in children.items():
            if not child.hidden:
                anchor = "-".join(path + [name]).replace("_", "-")
                summary = child.get_short_help_str(limit=120) if hasattr(child, "get_short_help_str") else ""
                out.append(f"| [`{' '.join(path + [name])}`](#{anchor}) | {_cell(summary) or '–'} |")
        out.append("")
        for name, child in children.items():
            if not child.hidden:
                _walk(path + [name], child, out, min(level + 1, 6))


def render_cli() -> str:
    import typer

    from pipeline.cli import app

    root = typer.main.get_command(app)
    out = ["Generated from the `vigil` command line (`pipeline/cli/`: one module per command group) when "
           "this site was built; `vigil COMMAND --help` prints the same.", ""]
    _walk(["vigil"], root, out, 2)
    return "\n".join(out)


# -- messages


def _schema_type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "const" in prop:
        return _code(json.dumps(prop["const"]))
    if "enum" in prop:
        return "one of " + ", ".join(_code(json.dumps(v)) for v in prop["enum"])
    if "anyOf" in prop:
        kinds = [_schema_type(p) for p in prop["anyOf"]]
        return " or ".join(kinds)
    kind = prop.get("type", "any")
    if kind == "array":
        return f"array of {_schema_type(prop.get('items', {}))}"
    if kind == "object" and "additionalProperties" in prop and isinstance(prop["additionalProperties"], dict):
        return f"object of {_schema_type(prop['additionalProperties'])}"
    if prop.get("format"):
        kind = f"{kind} ({prop['format']})"
    limits = [f"{sign} {prop[key]}" for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"),
                                                       ("maximum", "≤"), ("maxLength", "length ≤"),
                                                       ("minLength", "length ≥")) if key in prop]
    if "pattern" in prop:
        limits.append(f"matches {_code(prop['pattern'])}")
    return f"{kind} ({', '.join(limits)})" if limits else kind


def _properties_table(schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    out = ["| field | type | required | default | description |", "|---|---|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        default = _code(json.dumps(prop["default"])) if "default" in prop else "–"
        out.append(f"| `{name}` | {_cell(_schema_type(prop))} | {'yes' if name in required else 'no'} | "
                   f"{_cell(default)} | {_cell(prop.get('description', '')) or '–'} |")
    return out


def render_messages() -> str:
    from pipeline._messages import DLQ_SCHEMA, JOB_SCHEMA, RESULT_SCHEMA, DeadLetter, JobMessage, ResultMessage

    out = ["Generated from the pydantic models in `pipeline/_messages.py` (`model_json_schema()`) when this site "
           "was built. Field names are as on the wire (`schema`, not `schema_`).", ""]
    seen: set[str] = set()
    for wire, topic, model in ((JOB_SCHEMA, "vigil.jobs", JobMessage), (RESULT_SCHEMA, "vigil.results", ResultMessage),
                               (DLQ_SCHEMA, "vigil.dlq (the parsed view `vigil dlq` shows)", DeadLetter)):
        schema = model.model_json_schema(by_alias=True)
        out += [f"### `{wire}`: {model.__name__}", "", f"On `{topic}`. {_cell(schema.get('description', ''))}", ""]
        out += _properties_table(schema) + [""]
        for name, sub in schema.get("$defs", {}).items():
            if name in seen:
                continue
            seen.add(name)
            out += [f"#### {name}", ""]
            if sub.get("description"):
                out += [_cell(sub["description"]), ""]
            if sub.get("additionalProperties") is True:
                out += ["Fields beyond these are kept.", ""]
            out += _properties_table(sub) + [""]
        out += [f'??? note "JSON Schema of {wire}"', "", "    ```json"]
        out += ["    " + line for line in json.dumps(schema, indent=2, ensure_ascii=False).splitlines()]
        out += ["    ```", ""]
    return "\n".join(out)


# -- index mappings


def _flatten(properties: dict[str, Any], prefix: str = "") -> list[tuple[str, str, str]]:
    rows = []
    for name, body in properties.items():
        path = f"{prefix}{name}"
        if "properties" in body and "type" not in body:
            rows.append((path, "object", "dynamic: false" if body.get("dynamic") is False else ""))
            rows += _flatten(body["properties"], path + ".")
            continue
        kind = body.get("type", "object")
        notes = [f"{key}: {json.dumps(value)}" for key, value in body.items()
                 if key not in ("type", "properties", "fields")]
        rows.append((path, kind, ", ".join(notes)))
        if "properties" in body:
            rows += _flatten(body["properties"], path + ".")
        for sub, sub_body in body.get("fields", {}).items():
            rows.append((f"{path}.{sub}", sub_body.get("type", ""), "multi-field"))
    return rows


def render_mappings() -> str:
    folder = ROOT / "infra" / "elasticsearch" / "index"
    files = sorted(folder.glob("*.json"))
    if not files:
        raise PluginError(f"no index templates under {folder}")
    out = ["Generated from `infra/elasticsearch/index/*.json` when this site was built. Names assume the default "
           "`VIGIL_ES_INDEX_PREFIX` (`vigil`); `vigil setup` applies each file as the index template of the same "
           "name (`index/videos.json` → `vigil-videos`).", ""]
    for path in files:
        body = json.loads(path.read_text())
        template = body.get("template", {})
        mappings = template.get("mappings", {})
        out += [f"### `vigil-{path.stem}`", "", _cell(body.get("_doc", "")), ""]
        facts = [f"file `infra/elasticsearch/index/{path.name}`"]
        if body.get("composed_of"):
            facts.append("component templates " + ", ".join(_code(c) for c in body["composed_of"]))
        if "dynamic" in mappings:
            facts.append(f"`dynamic: {json.dumps(mappings['dynamic'])}`")
        settings = template.get("settings")
        if settings:
            facts.append("settings " + _code(json.dumps(settings)))
        out += ["; ".join(facts) + ".", ""]
        out += ["| field | type | notes |", "|---|---|---|"]
        out += [f"| `{field}` | {kind} | {_cell(notes) or '–'} |" for field, kind, notes in
                _flatten(mappings.get("properties", {}))]
        out += ["", f'??? note "{path.name}"', "", "    ```json"]
        out += ["    " + line for line in json.dumps(body, indent=2, ensure_ascii=False).splitlines()]
        out += ["    ```", ""]
    return "\n".join(out)


GENERATORS = {
    "settings": render_settings,
    "cli": render_cli,
    "messages": render_messages,
    "mappings": render_mappings,
}


# -- MkDocs events


def on_pre_build(config: Any) -> None:
    _used.clear()


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise PluginError(f"{page.file.src_path}: unknown marker <!-- vigil:{name} --> "
                              f"(known: {', '.join(GENERATORS)})")
        _used.add(name)
        try:
            return GENERATORS[name]()
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"{page.file.src_path}: generating {name} failed: {type(exc).__name__}: {exc}") from exc

    return MARKER.sub(replace, markdown)


def on_post_build(config: Any) -> None:
    unused = sorted(set(GENERATORS) - _used)
    if unused:
        raise PluginError(f"generated sections no page asks for: {', '.join(unused)}")
