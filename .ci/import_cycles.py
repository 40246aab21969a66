#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a circle.

Usage: python3 .ci/import_cycles.py worker/src dashboard/src operator/src

Each top-level module of a crate (a file or a folder under src/) is a node;
`crate::m` paths outside comments and outside the `#[cfg(test)] mod tests`
block add an edge to module `m`. Every strongly connected set of two or more
modules is printed with the edges inside it. Reads source text only (no
build), so it runs in a second.
"""

import os
import re
import sys

COMMENT = re.compile(r"//[^\n]*")
TESTS = re.compile(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", re.S)
PATH = re.compile(r"\bcrate::([a-z_][a-z_0-9]*)")
GROUP = re.compile(r"\bcrate::\{([^}]*)\}")
NAME = re.compile(r"(?:^|,)\s*([a-z_][a-z_0-9]*)")


def module_of(src_dir, path):
    parts = os.path.relpath(path, src_dir)[: -len(".rs")].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts[0] if parts else None


def graph(src_dir):
    edges = {}
    for folder, _, files in os.walk(src_dir):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(folder, f)
            module = module_of(src_dir, path)
            if module is None:
                continue
            with open(path, encoding="utf-8") as fh:
                text = TESTS.sub("", COMMENT.sub("", fh.read()))
            refs = set(PATH.findall(text))
            for group in GROUP.findall(text):
                refs.update(NAME.findall(group))
            edges.setdefault(module, set()).update(r for r in refs if r != module)
    return {m: {r for r in refs if r in edges} for m, refs in edges.items()}


def cycles(edges):
    """Tarjan's strongly connected components of two or more nodes."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main(dirs):
    failed = False
    for src_dir in dirs:
        edges = graph(src_dir)
        found = cycles(edges)
        for component in found:
            failed = True
            print(f"{src_dir}: modules import each other in a circle: {', '.join(component)}")
            for m in component:
                print(f"  {m} -> {', '.join(sorted(edges[m] & set(component)))}")
        if not found:
            print(f"{src_dir}: {len(edges)} modules, no import circle")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["worker/src", "dashboard/src", "operator/src"]))
