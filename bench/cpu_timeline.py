"""Benchmark aid: where a command's CPU goes over time, process by process, sampled at a fixed interval.

    .venv/bin/python bench/cpu_timeline.py [--interval 1.0] -- .venv/bin/python bench/campaign.py

A run's end-to-end time says how long it took, not which of its stretches leave a core idle. This runs the
command, and at every interval reads the CPU time of the command's process and of every process under it
(psutil, which comes with Dask), then prints one row per interval: the cores each used meanwhile. Processes
are named by their command line: `prefect-server` (Prefect's temporary server, uvicorn), `spawned-N`
(multiprocessing's children: sender processes, Dask's workers, in order of appearance), or their program.
The command's own output passes through, so its result line comes before the timeline.
A process that ends between two readings loses its last interval's CPU (at most one interval's worth).
Last line: seconds=… cpu_s=… command_cpu_s=… started_cpu_s=… under_1_5_cores_s=… cores=…
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

import psutil


@dataclass
class Timeline:
    """CPU seconds by process name, per interval, with the last reading of every process seen."""

    labels: dict[int, str] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)
    rows: list[tuple[float, dict[str, float]]] = field(default_factory=list)

    def label(self, proc: psutil.Process, top: int) -> str:
        """The process's name, given when first seen: the command (pid `top`) or one from its command line."""
        if proc.pid not in self.labels:
            self.labels[proc.pid] = "command" if proc.pid == top else _name(proc, list(self.labels.values()))
        return self.labels[proc.pid]

    def read(self, top: psutil.Process, at: float) -> None:
        """One reading: what each process spent since the last, summed by name."""
        spent: dict[str, float] = {}
        for proc in [top, *top.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                name = self.label(proc, top.pid)
            except psutil.Error:  # ended meanwhile
                continue
            now = times.user + times.system
            spent[name] = spent.get(name, 0.0) + now - self.last.get(proc.pid, 0.0)
            self.last[proc.pid] = now
        self.rows.append((at, spent))


def _name(proc: psutil.Process, taken: list[str]) -> str:
    """A name from the command line, numbered after the ones `taken` with the same start."""
    argv = proc.cmdline()
    cmdline = " ".join(argv)
    if "uvicorn" in cmdline:
        base = "prefect-server"
    elif "resource_tracker" in cmdline:
        base = "resource-tracker"
    elif "multiprocessing" in cmdline:
        base = "spawned"
    else:
        base = os.path.basename(argv[0]) if argv else proc.name()
    used = sum(1 for name in taken if name.startswith(base))
    return f"{base}-{used + 1}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to time after --")
    timeline = Timeline()
    start = time.perf_counter()
    child = subprocess.Popen(command)
    top = psutil.Process(child.pid)
    while child.poll() is None:
        time.sleep(args.interval)
        try:
            timeline.read(top, time.perf_counter() - start)
        except psutil.NoSuchProcess:  # the command ended while being read
            break
    child.wait()
    seconds = time.perf_counter() - start
    report(timeline, seconds)
    sys.exit(child.returncode)


def report(timeline: Timeline, seconds: float) -> None:
    """The rows (cores each process used per interval), then the one-line summary."""
    before, under, totals = 0.0, 0.0, {}
    for at, spent in timeline.rows:
        width = at - before
        busy = {name: cpu for name, cpu in spent.items() if cpu / width >= 0.05}
        cores = sum(spent.values()) / width
        under += width if cores < 1.5 else 0.0
        cells = "  ".join(f"{name} {cpu / width:.2f}" for name, cpu in sorted(busy.items()))
        print(f"{at:7.1f} s  {cores:4.2f} cores  {cells}")
        for name, cpu in spent.items():
            totals[name] = totals.get(name, 0.0) + cpu
        before = at
    cpu = sum(totals.values())
    own = totals.get("command", 0.0)
    print("by process: " + ", ".join(f"{name} {s:.1f} s" for name, s in sorted(totals.items(), key=lambda kv: -kv[1])))
    print(
        f"seconds={seconds:.1f} cpu_s={cpu:.1f} command_cpu_s={own:.1f} started_cpu_s={cpu - own:.1f} "
        f"under_1_5_cores_s={under:.1f} cores={os.cpu_count()}"
    )


if __name__ == "__main__":
    main()
