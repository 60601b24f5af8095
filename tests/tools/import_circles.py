#!/usr/bin/env python3
"""Import circles between the files of each crate; exits 1 if there is one.

Why: a circle between two files means neither can be read, moved or tested
without the other (issue 16 removed four). A file's edges are the modules
it names (`use crate::a::b`, `super::x`, `self::y` and inline paths),
outside comments and tests. A submodule naming its parent is not a circle:
it is part of the parent. Run from the repository root; `.ci/run` runs it.
"""

import os
import re
import sys

CRATES = {
    "eddy-platform": "features/platform/src",
    "eddy-features": "features/src",
    "eddy-training": "training/src",
    "eddy-serving": "serving/src",
    "eddy": "src",
}
PATH = re.compile(r"\b(?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+")


def module_of(root, file):
    """`a/b/mod.rs` and `a/b.rs` are module (a, b); lib.rs and main.rs ()."""
    parts = os.path.relpath(file, root)[: -len(".rs")].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def code(file):
    """The file's text before its tests, without comment lines."""
    text = open(file).read().split("#[cfg(test)]")[0]
    return "\n".join(l for l in text.split("\n") if not l.strip().startswith("//"))


def edges(modules, module, text):
    """The modules of the crate that `module` names, its ancestors left out."""
    out = set()
    for path in PATH.findall(text):
        parts = path.split("::")
        if parts[0] == "crate":
            base, parts = [], parts[1:]
        elif parts[0] == "self":
            base, parts = list(module), parts[1:]
        else:
            base = list(module)
            while parts and parts[0] == "super":
                base, parts = base[:-1], parts[1:]
        # The longest module the path names.
        named, current = (tuple(base) if tuple(base) in modules else None), list(base)
        for p in parts:
            current.append(p)
            if tuple(current) not in modules:
                break
            named = tuple(current)
        if named is not None and named != module and module[: len(named)] != named:
            out.add(named)
    return out


def circles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                found.append(component)

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def main():
    total = 0
    for crate, root in CRATES.items():
        files = {}
        for directory, _, names in os.walk(root):
            for name in names:
                if name.endswith(".rs"):
                    path = os.path.join(directory, name)
                    files[module_of(root, path)] = path
        graph = {m: edges(files.keys(), m, code(f)) for m, f in files.items()}
        for component in circles(graph):
            total += 1
            names = " <-> ".join("::".join(m) or "(root)" for m in component)
            print(f"{crate}: {names}")
    print(f"import circles: {total}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
