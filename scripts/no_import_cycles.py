"""Fail when any module of the package imports itself through others (`make check`).

import-linter's contracts say which way imports go; this says no two modules need each other,
at any distance, including imports made inside functions.
"""

from __future__ import annotations

import sys

import grimp


def cycles(package: str) -> list[list[str]]:
    """One shortest cycle through each module that is on one."""
    graph = grimp.build_graph(package)
    found: list[list[str]] = []
    seen: set[str] = set()
    for module in sorted(graph.modules):
        if module in seen:
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycle = [module, *back]
                found.append(cycle)
                seen.update(cycle)
                break
    return found


def main() -> int:
    found = cycles("eventstitch")
    for cycle in found:
        print("import cycle: " + " -> ".join(cycle))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
