#!/usr/bin/env python3
"""Writes the parameter table of helm/ddcoterm/README.md from values.schema.json (each value's `description`)
and values.yaml (its default), between the `<!-- parameters:start -->` and `<!-- parameters:end -->` lines.

A value is a row when it is a leaf: not an object whose every property is described (those are expanded
into one row per property). A leaf without a description is an error: every value a user can set is
documented in the schema.

Usage: python3 scripts/helm-docs.py [--check]
  --check   write nothing; exit 1 when the README's table differs from the schema's (run `make helm-docs`)
Needs PyYAML (the .build/venv of scripts/py-tools.sh has it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "ddcoterm"
START = "<!-- parameters:start -->"
END = "<!-- parameters:end -->"
MISSING = object()


def resolve(node: dict, schema: dict) -> dict:
    """The node with its `$ref` (into #/definitions) merged under its own keys."""
    ref = node.get("$ref")
    if not ref:
        return node
    target = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def expandable(node: dict, schema: dict) -> bool:
    props = node.get("properties")
    return bool(props) and all("description" in resolve(p, schema) for p in props.values())


def type_of(node: dict) -> str:
    if "enum" in node:
        return " | ".join(json.dumps(v) for v in node["enum"])
    t = node.get("type", "any")
    return "/".join(t) if isinstance(t, list) else t


def default_of(values: object, path: list[str]) -> object:
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return MISSING
        values = values[key]
    return values


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rows(schema: dict, values: dict) -> tuple[list[str], list[str]]:
    out: list[str] = []
    undocumented: list[str] = []

    def walk(node: dict, path: list[str]) -> None:
        node = resolve(node, schema)
        if path and not expandable(node, schema):
            key = ".".join(path)
            desc = node.get("description")
            if not desc:
                undocumented.append(key)
                return
            d = default_of(values, path)
            if d is MISSING:
                shown = ""
            else:
                shown = json.dumps(d, separators=(", ", ": "))
                if len(shown) > 48:
                    shown = "(see values.yaml)"
                shown = f"`{cell(shown)}`" if shown != "(see values.yaml)" else shown
            out.append(f"| `{key}` | {cell(type_of(node))} | {shown} | {cell(desc)} |")
            return
        for name, child in node.get("properties", {}).items():
            walk(child, path + [name])

    walk(schema, [])
    return out, undocumented


def table() -> str:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text()) or {}
    lines, undocumented = rows(schema, values)
    if undocumented:
        raise SystemExit("helm-docs: values without a description in values.schema.json: " + ", ".join(undocumented))
    head = ["| value | type | default | meaning |", "|---|---|---|---|"]
    return "\n".join(head + lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail when the README's table is not current")
    args = ap.parse_args()
    readme = CHART / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        print(f"helm-docs: {readme} lacks the {START} / {END} lines", file=sys.stderr)
        return 1
    before, rest = text.split(START, 1)
    current, after = rest.split(END, 1)
    want = f"{START}\n{table()}\n{END}"
    if args.check:
        if f"{START}{current}{END}" != want:
            print(f"helm-docs: {readme.relative_to(ROOT)}: the parameter table is not the one values.schema.json "
                  "describes: run `make helm-docs`", file=sys.stderr)
            return 1
        print(f"helm-docs: {readme.relative_to(ROOT)} is current")
        return 0
    readme.write_text(before + want + after)
    print(f"helm-docs: wrote the parameter table of {readme.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
