#!/usr/bin/env bash
# The layer rules the compiler does not check (docs: cli -> config -> cmd ->
# engine -> model / sys; report renders):
#
# 1. No arrow up from the bottom: nothing under src/model or src/sys names
#    crate::config, crate::cmd, crate::engine or crate::report (a `use`, a path in
#    code, or a doc link: each is a dependency on a layer above).
# 2. No import circles between modules: module A naming module B (crate::B...,
#    super::B...) while B, directly or through others, names A. A parent's
#    `mod`/`pub use` of its own children and a child's `super::` to its parent do
#    not count; test modules do not count.
#
# Prints every offence and exits 1 when there is one, 0 otherwise.
#
#   scripts/check-layers.sh [SRC_DIR]     (default: the repository's src/)
set -euo pipefail
src=${1:-"$(dirname "$0")/../src"}
[ -d "$src/model" ] && [ -d "$src/sys" ] || {
  echo "check-layers: no $src/model or $src/sys" >&2
  exit 2
}

status=0
upward='crate::(config|cmd|engine|report)\b|crate::\{[^}]*\b(config|cmd|engine|report)\b'
if grep -rnE --include='*.rs' "$upward" "$src/model" "$src/sys"; then
  echo "check-layers: the lines above reach up from model/ or sys/ into config, cmd, engine or report" >&2
  status=1
fi

python3 - "$src" <<'EOF' || status=1
import os, re, sys

root = sys.argv[1].rstrip('/')
mods = {}
for d, _, files in os.walk(root):
    for f in files:
        if not f.endswith('.rs'):
            continue
        path = os.path.join(d, f)
        parts = os.path.relpath(path, root)[:-3].split(os.sep)
        if parts[-1] == 'mod':
            parts = parts[:-1]
        if parts in (['lib'], ['main']) or not parts:
            continue
        mods['::'.join(parts)] = path


def resolve(path):
    """The deepest module a path names."""
    segs, best = path.split('::'), None
    for i in range(1, len(segs) + 1):
        if '::'.join(segs[:i]) in mods:
            best = '::'.join(segs[:i])
    return best


edges = {}
for mod, path in mods.items():
    with open(path, encoding='utf-8') as fh:
        text = fh.read()
    # Test modules sit at the end of a file; what they import is not the module's.
    text = re.split(r'#\[cfg\(test\)\]\s*mod tests\b', text)[0]
    text = re.sub(r'//.*', '', text)
    # `super::` is the module's parent (for a mod.rs too: the module is its folder).
    parent = mod.rsplit('::', 1)[0] if '::' in mod else ''
    targets = set()
    for p in re.findall(r'\bcrate::((?:\w+::)*\w+)', text):
        targets.add(resolve(p))
    for p in re.findall(r'\bsuper::((?:\w+::)*\w+)', text):
        targets.add(resolve(f'{parent}::{p}' if parent else p))
    # Ancestors (a child naming its parent's items) are not circles.
    edges[mod] = {t for t in targets if t and t != mod and not mod.startswith(t + '::')}

# Tarjan's strongly connected components: any with two or more modules is a circle.
index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]
sys.setrecursionlimit(10000)


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(edges.get(v, ())):
        if w not in index:
            visit(w)
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
            circles.append(sorted(comp))


for v in sorted(edges):
    if v not in index:
        visit(v)
for comp in circles:
    arrows = [f'{a} -> {b}' for a in comp for b in sorted(edges[a]) if b in comp]
    print(f"check-layers: import circle: {', '.join(arrows)}", file=sys.stderr)
sys.exit(1 if circles else 0)
EOF

[ "$status" -eq 0 ] && echo "check-layers: model/ and sys/ import nothing above them; no import circles"
exit "$status"
