"""What it costs to shed under 1 % of the viral burst: the template's policy with capacity held.

    python -m deploy.sim.headroom [--min-sizes 2,100,120,140] [--seed 0]

No reactive policy sheds under 1 % of the burst (section 11 of deploy/README.md): each waits
for a CloudWatch period, its evaluation and a boot. This runs the template's policy, with and
without a warm pool, at larger ``MinSize`` values over the same day as ``deploy.simulate``
and prints the share shed during the burst (its first 47 minutes: the rise, the plateau and the
decay) and over the day, with the instance-hours and their cost.
"""

from __future__ import annotations

from dataclasses import replace
from multiprocessing import get_context

from deploy.sim.fleet import FleetResult, run_fleet
from deploy.sim.policies import standard_policies
from deploy.simulate import base_config, get_args_parser

BURST_MINUTES = 47


def _shed(result: FleetResult, window: slice | None = None) -> float:
    window = window or slice(None)
    shed = sum(float(v[window].sum()) for v in result.shed.values())
    return shed / max(float(result.offered[window].sum()) * 60, 1.0)


def main(argv: list[str] | None = None) -> None:
    parser = get_args_parser()  # the same day as deploy.simulate, with its options
    parser.description = __doc__.split("\n")[0]
    parser.add_argument("--min-sizes", default="2,100,120,140")
    args = parser.parse_args(argv)
    base = base_config(args)
    group, traffic = base.group, base.traffic
    template = standard_policies(group, base.table)[0]
    configs = [
        replace(
            base,
            group=group.with_sizes(min_size=m, max_size=args.max_size),
            policy=replace(policy, name=f"{policy.name}, MinSize {m}"),
        )
        for m in (int(s) for s in args.min_sizes.split(","))
        for policy in (template, template.with_extras(warm_pool=True))
    ]
    with get_context("fork").Pool(2) as pool:
        results = pool.map(run_fleet, configs)
    start = int(traffic.burst_at_s // 60)
    burst = slice(start, start + BURST_MINUTES)
    print(f"{'run':<62}{'burst shed':>11}{'day shed':>10}{'inst-h':>8}{'cost $':>8}")
    for r in results:
        print(
            f"{r.name:<62}{100 * _shed(r, burst):>10.2f}%{100 * _shed(r):>9.2f}%"
            f"{r.instance_hours:>8.0f}{r.cost:>8.0f}"
        )


if __name__ == "__main__":
    main()
