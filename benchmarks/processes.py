"""Resident memory of a process (and its children), read from /proc: what the serving benchmarks report."""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            direct = [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in direct:
            found += [child, *children(child)]
    return found


def rss_mb(pid: int, with_children: bool = False) -> float:
    """Resident set size in MB (NaN when the process is gone)."""
    total, seen = 0, False
    for process in [pid, *(children(pid) if with_children else [])]:
        try:
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    seen = True
        except OSError:
            continue
    return total / 1024 if seen else float("nan")


def pss_mb(pid: int) -> float:
    """Proportional set size in MB: shared pages split between the processes that share them, so the PSS of
    a gunicorn master and its workers adds up to what the server really holds."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
