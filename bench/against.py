"""Benchmark: this checkout's 1M campaign against an earlier commit's, in alternated pairs on the same machine.

    .venv/bin/python bench/against.py 782abbe                      # 4 pairs, SQLite for both (issue #14's engines)
    .venv/bin/python bench/against.py 782abbe --pairs 6 --this-args "--warehouse sqlite" --ref-args ""

Why pairs: on a shared machine the same run takes 46 s at one hour and 75 s at another (docs/benchmarks.md),
so a figure measured on another day says nothing; two codes compared must run side by side, the order
alternated so neither always runs on a warmer cache. The earlier commit is checked out once as a git
worktree under bench/.cache/ref-<commit>/ with its own .venv (`make .venv/.installed` there, as its own
README sets up) and runs its own `bench/campaign.py`. Each run gets its checkout's `PREFECT_HOME`, as `make
bench` gives it, and 120 s to wait for Prefect's temporary server (Prefect's default 20 s is too short for a
first start, which migrates a new database; bench/campaign.py sets the same). Before the pairs, each side
runs once unmeasured: that builds its cached warehouse and its Prefect database where they are missing, and
warms the page cache for both. Remove the checkout afterwards with
`git worktree remove bench/.cache/ref-<commit>`.

Each pair prints one line; the last line is
ref=… pairs=… this_median_s=… ref_median_s=… diff_median_s=… diffs_s=… this_cpu_median_s=… ref_cpu_median_s=…
where a diff is this code's `campaign_s` less the earlier commit's in the same pair, and cpu is the CPU time
of the whole bench process and everything it started (its imports and its floor query included).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
CAMPAIGN_S = re.compile(r"campaign_s=([0-9.]+)")


@dataclass(frozen=True)
class Timed:
    """One bench run: its `campaign_s` and the CPU of its whole process tree."""

    campaign_s: float
    cpu_s: float


def checkout(commit: str) -> Path:
    """The earlier commit as a worktree with its own virtual environment, made on first use."""
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{commit}^{{commit}}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    where = CACHE / f"ref-{sha[:12]}"
    if not (where / ".git").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(where), sha], cwd=ROOT, check=True)
    subprocess.run(["make", "--no-print-directory", ".venv/.installed"], cwd=where, check=True)
    return where


def timed_run(where: Path, args: list[str]) -> Timed:
    """`bench/campaign.py` of the checkout at `where`: its figure and CPU (its output is shown only if it fails)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        **os.environ,
        "PREFECT_HOME": str(where / ".prefect"),
    }
    done = subprocess.run(
        [str(where / ".venv" / "bin" / "python"), "bench/campaign.py", *args],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = CAMPAIGN_S.findall(done.stdout)
    if done.returncode != 0 or not found:
        sys.exit(f"bench/campaign.py in {where} failed (exit {done.returncode}): {done.stderr.strip()[-600:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(float(found[-1]), cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", help="the earlier commit to run against (any git revision)")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--this-args", default="--warehouse sqlite", help="this checkout's bench/campaign.py options")
    parser.add_argument("--ref-args", default="", help="the earlier commit's bench/campaign.py options")
    args = parser.parse_args()
    ref = checkout(args.commit)
    this_args, ref_args = shlex.split(args.this_args), shlex.split(args.ref_args)
    for where, options in ((ref, ref_args), (ROOT, this_args)):
        print(f"warm-up in {where}: {timed_run(where, options).campaign_s:.1f} s, not counted", flush=True)
    ours: list[Timed] = []
    theirs: list[Timed] = []
    for pair in range(args.pairs):
        ref_first = pair % 2 == 1  # alternated: neither code always runs first
        if ref_first:
            theirs.append(timed_run(ref, ref_args))
        ours.append(timed_run(ROOT, this_args))
        if not ref_first:
            theirs.append(timed_run(ref, ref_args))
        order = f"{args.commit} first" if ref_first else "this code first"
        print(
            f"pair {pair + 1}: this code {ours[-1].campaign_s:.1f} s ({ours[-1].cpu_s:.1f} CPU-s), "
            f"{args.commit} {theirs[-1].campaign_s:.1f} s ({theirs[-1].cpu_s:.1f} CPU-s), {order}",
            flush=True,
        )
    diffs = [a.campaign_s - b.campaign_s for a, b in zip(ours, theirs, strict=True)]
    print(
        f"ref={args.commit} pairs={args.pairs} "
        f"this_median_s={statistics.median(t.campaign_s for t in ours):.1f} "
        f"ref_median_s={statistics.median(t.campaign_s for t in theirs):.1f} "
        f"diff_median_s={statistics.median(diffs):+.1f} diffs_s={','.join(f'{d:+.1f}' for d in diffs)} "
        f"this_cpu_median_s={statistics.median(t.cpu_s for t in ours):.1f} "
        f"ref_cpu_median_s={statistics.median(t.cpu_s for t in theirs):.1f}"
    )


if __name__ == "__main__":
    main()
