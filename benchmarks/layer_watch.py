"""What `tracking.watch` costs: per-epoch time with it off, on at `watch_every=1`, and on at the
default (10), for a plain run and a population of 8, at batch 32 (moons, 2-10-5-1, Adam).

    .venv/bin/python benchmarks/layer_watch.py [--repeats 5]

The per-epoch cost is the difference of two run lengths through the engine (imports and
set-up cancel); the variants run interleaved, and each figure is a median. Prints a Markdown
table of ratios against `tracking.watch=false` in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from population import compose_cfg, fit_seconds  # noqa: E402

VARIANTS = {
    "off": ["tracking.watch=false"],
    "every epoch": ["tracking.watch=true", "tracking.watch_every=1"],
    "every 10 (default)": ["tracking.watch=true"],
}
SHORT, LONG = 20, 120


def per_epoch(overrides: list[str], members: int) -> float:
    from nnlab.config.seeds import member_config

    cfg = compose_cfg(f"repeats={members}", "data.batch_size=32", *overrides)
    group = [member_config(cfg, k) for k in range(members)] if members > 1 else [cfg]
    return (fit_seconds(cfg, group, LONG) - fit_seconds(cfg, group, SHORT)) / (LONG - SHORT)


def main() -> None:
    from nnlab.training.setup import quiet_lightning

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    quiet_lightning()
    print(f"## tracking.watch: per-epoch time, batch 32 (median of {args.repeats})\n")
    print(
        "| members | "
        + " | ".join(f"{v}, ms" for v in VARIANTS)
        + " | every epoch / off | every 10 / off |"
    )
    print("|---|" + "---|" * (len(VARIANTS) + 2))
    for members in (1, 8):
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(args.repeats):
            for name, overrides in VARIANTS.items():
                times[name].append(per_epoch(overrides, members))
        ms = {v: statistics.median(t) * 1000 for v, t in times.items()}
        off = ms["off"]
        print(
            f"| {members} | "
            + " | ".join(f"{ms[v]:.2f}" for v in VARIANTS)
            + f" | {ms['every epoch'] / off:.3f} | {ms['every 10 (default)'] / off:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
