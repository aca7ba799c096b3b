"""The ready paper scenario: the IEEE 33-bus feeder with six European LV communities.

``python -m mosaik_bilevel.scenarios.paper --days 2 --out results/sim`` (or
``mosaik-bilevel simulate --case paper ...``) simulates consecutive days from 2016-05-24 with
daily clearing at midnight.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .run import simulate

DEFAULT_DAY = "2016-05-24"


def paper_scenario(*, days: int = 1, day: str = DEFAULT_DAY, step_minutes: int = 60,
                   method: str = "exact", out: str | Path, **options) -> dict:
    """Simulate ``days`` days of the paper case; see :func:`~.run.simulate`."""
    return simulate("paper", {"day": day, "days": days, "step_minutes": step_minutes},
                    days=days, method=method, out=out, **options)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--day", default=DEFAULT_DAY)
    p.add_argument("--step-minutes", type=int, default=60)
    p.add_argument("--method", default="exact", choices=["exact", "ldd-admm"])
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    paper_scenario(days=args.days, day=args.day, step_minutes=args.step_minutes,
                   method=args.method, out=args.out, progress=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
