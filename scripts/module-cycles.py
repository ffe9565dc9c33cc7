#!/usr/bin/env python3
"""List `crate::<top>` references between the top-level modules of `src/`
and print the import cycles among them (issue 16 item 5).

Usage: scripts/module-cycles.py [--tests] [--edges]
  --tests  also count `#[cfg(test)]` code (test modules, `tests.rs` files)
  --edges  print every edge with the first place it comes from

Test-only code is left out by default: a `#[cfg(test)]` item (an inline
`mod tests { ... }` or `mod tests;` and the file behind it) is skipped.
The check is textual (paths written in the source, `crate::a::b` and
`crate::{a, b::c}`), which is what a reader sees; it needs no build.
Exit status 1 when a cycle exists: `make lint` (and so `.ci/run`) runs it,
so no cycle can come back.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
ROOT = os.path.normpath(ROOT)
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments(text):
    # Line comments (doc comments included) and block comments; strings are
    # left alone except that a `//` inside a string literal is rare enough here.
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(re.sub(r"//.*", "", line) for line in text.split("\n"))


def cfg_test_items(text):
    """Return (text without #[cfg(test)] items, names of `#[cfg(test)] mod x;`)."""
    out = []
    test_mods = set()
    i = 0
    pat = re.compile(r"#\[cfg\(test\)\]\s*")
    while True:
        m = pat.search(text, i)
        if not m:
            out.append(text[i:])
            break
        out.append(text[i : m.start()])
        j = m.end()
        # skip further attributes
        while text.startswith("#[", j):
            depth = 0
            while j < len(text):
                if text[j] == "[":
                    depth += 1
                elif text[j] == "]":
                    depth -= 1
                    if depth == 0:
                        j += 1
                        break
                j += 1
            while j < len(text) and text[j].isspace():
                j += 1
        mm = re.match(r"(pub(\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", text[j:])
        if mm:
            test_mods.add(mm.group(3))
            i = j + mm.end()
            continue
        # item up to its matching brace or semicolon
        k = j
        while k < len(text) and text[k] not in "{;":
            k += 1
        if k < len(text) and text[k] == ";":
            i = k + 1
            continue
        depth = 0
        while k < len(text):
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    k += 1
                    break
            k += 1
        i = k
    return "".join(out), test_mods


def files_of(top):
    """(path, is_test) for every file of top-level module `top`."""
    single = os.path.join(ROOT, top + ".rs")
    result = []

    def walk(path, mod_dir, is_test):
        with open(path, encoding="utf-8") as f:
            text = strip_comments(f.read())
        body, test_mods = cfg_test_items(text)
        result.append((path, is_test, text, body))
        for name in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", text, re.M):
            for cand in (os.path.join(mod_dir, name + ".rs"), os.path.join(mod_dir, name, "mod.rs")):
                if os.path.exists(cand):
                    sub_dir = os.path.join(mod_dir, name)
                    walk(cand, sub_dir, is_test or name in test_mods)
                    break

    if os.path.exists(single):
        walk(single, os.path.join(ROOT, top), False)
    else:
        walk(os.path.join(ROOT, top, "mod.rs"), os.path.join(ROOT, top), False)
    return result


def refs(text, tops):
    found = {}
    for m in re.finditer(r"\bcrate::(" + IDENT + r"|\{)", text):
        if m.group(1) == "{":
            # grouped import: crate::{a, b::{c, d}, e}
            depth, k = 1, m.end()
            while k < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[k], 0)
                k += 1
            inner = text[m.end() : k - 1]
            level, cur, names = 0, "", []
            for ch in inner:
                if ch == "{":
                    level += 1
                elif ch == "}":
                    level -= 1
                elif ch == "," and level == 0:
                    names.append(cur)
                    cur = ""
                    continue
                if level == 0:
                    cur += ch
            names.append(cur)
            for n in names:
                n = n.strip().split("::")[0].strip()
                if n in tops:
                    found.setdefault(n, m.start())
        elif m.group(1) in tops:
            found.setdefault(m.group(1), m.start())
    return found


def main():
    with_tests = "--tests" in sys.argv
    show_edges = "--edges" in sys.argv
    with open(os.path.join(ROOT, "lib.rs"), encoding="utf-8") as f:
        tops = re.findall(r"^pub mod (" + IDENT + r");", f.read(), re.M)
    tops_set = set(tops)
    graph = {t: {} for t in tops}
    for top in tops:
        for path, is_test, text, body in files_of(top):
            if is_test and not with_tests:
                continue
            src = text if with_tests else body
            for dep, pos in refs(src, tops_set).items():
                if dep != top and dep not in graph[top]:
                    line = src.count("\n", 0, pos) + 1
                    graph[top][dep] = f"{os.path.relpath(path, os.path.dirname(ROOT))}:{line}"
    if show_edges:
        for top in tops:
            for dep in sorted(graph[top]):
                print(f"{top} -> {dep}  ({graph[top][dep]})")
        print()

    # Strongly connected components (Tarjan), then one shortest cycle per
    # pair of mutually dependent modules so the output is readable.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for t in tops:
        if t not in index:
            strong(t)
    pairs = sorted(
        (a, b) for a in tops for b in graph[a] if a < b and a in graph[b]
    )
    mode = "including #[cfg(test)] code" if with_tests else "non-test code"
    print(f"top-level modules: {len(tops)}, edges: {sum(len(v) for v in graph.values())} ({mode})")
    print(f"two-module cycles: {len(pairs)}")
    for a, b in pairs:
        print(f"  {a} <-> {b}   ({a}: {graph[a][b]}; {b}: {graph[b][a]})")
    print(f"strongly connected groups (cycles of any length): {len(sccs)}")
    for comp in sccs:
        print(f"  [{len(comp)}] " + " ".join(comp))
    sys.exit(1 if sccs else 0)


if __name__ == "__main__":
    main()
