"""Simulate the deployed system for a day and compare scaling policies (issue #17).

    python -m deploy.simulate                       # table, runs/simulate/simulate.json, PNGs
    python -m deploy.simulate --plots deploy/results  # also write the README's plots there

Each instance applies the gate's policy (:mod:`deploy.sim.gate`) with the service times
measured from this code (:mod:`deploy.sim.service`); the group's numbers are read from
``deploy/cloudformation.yaml`` (:mod:`deploy.sim.template`) with ``MaxSize`` raised to
``--max-size`` (as ``--parameter-overrides MaxSize=200`` would); the traffic is a day with a
diurnal curve and a viral burst (:mod:`deploy.sim.traffic`). Every run uses the same seed, so
the same arrivals. The runs are spread over ``--jobs`` processes.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path

from deploy.sim.exact import load_table
from deploy.sim.fleet import FleetConfig, FleetResult, run_fleet
from deploy.sim.policies import Policy, standard_policies
from deploy.sim.report import plot_day, plot_shed, table, write_json
from deploy.sim.service import GPU_PASS, gpu_profile
from deploy.sim.template import read_template
from deploy.sim.traffic import Traffic

# The policy the warm-pool, predictive and least-outstanding-requests variants are run on.
EXTRAS_ON = "RequestCountPerTarget"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instance-type", default=None, choices=sorted(GPU_PASS))
    parser.add_argument("--max-size", type=int, default=200, help="MaxSize override")
    parser.add_argument("--seconds", type=float, default=86_400.0, help="simulated time")
    parser.add_argument("--dt", type=float, default=1.0, help="fleet tick, seconds")
    parser.add_argument("--peak", type=float, default=6_000.0, help="diurnal peak, req/s")
    parser.add_argument("--trough", type=float, default=800.0, help="diurnal trough, req/s")
    parser.add_argument("--burst-factor", type=float, default=10.0)
    parser.add_argument(
        "--pass-scale", type=float, default=1.0, help="multiply the estimated GPU pass time"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="processes")
    parser.add_argument("--out", type=Path, default=Path("runs/simulate"), help="JSON and PNGs")
    parser.add_argument("--plots", type=Path, default=None, help="also write the PNGs here")
    return parser


def scenarios(base: FleetConfig, policies: list[Policy]) -> list[FleetConfig]:
    """Every policy with round robin, then the extras on :data:`EXTRAS_ON`'s policy."""
    runs = [replace(base, policy=p) for p in policies]
    pick = next(p for p in policies if p.name.startswith(EXTRAS_ON))
    runs.append(replace(base, policy=pick, lb="least_outstanding"))
    runs.append(replace(base, policy=pick.with_extras(warm_pool=True)))
    runs.append(replace(base, policy=pick.with_extras(predictive=True)))
    runs.append(replace(base, policy=pick.with_extras(warm_pool=True, predictive=True)))
    return runs


def base_config(args: argparse.Namespace) -> FleetConfig:
    """The simulated day the arguments describe, before a policy is chosen."""
    group = read_template()
    group = group.with_sizes(max_size=max(args.max_size, group.min_size))
    profile = gpu_profile(args.instance_type or group.instance_type)
    if args.pass_scale != 1.0:  # how much hangs on the GPU estimate
        profile = replace(
            profile,
            pass_fixed_s=profile.pass_fixed_s * args.pass_scale,
            pass_per_image_s=profile.pass_per_image_s * args.pass_scale,
        )
    traffic = Traffic(
        trough=args.trough, peak=args.peak, burst_factor=args.burst_factor, seed=args.seed
    )
    return FleetConfig(
        group=group,
        profile=profile,
        table=load_table(profile, requests=2000, seed=args.seed),
        policy=Policy("placeholder", None, 0.0),
        traffic=traffic,
        dt=args.dt,
        seconds=args.seconds,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> list[FleetResult]:
    args = get_args_parser().parse_args(argv)
    started = time.perf_counter()
    base = base_config(args)
    group, profile, loads, traffic = base.group, base.profile, base.table, base.traffic
    configs = scenarios(base, standard_policies(group, loads))
    with get_context("fork").Pool(max(1, args.jobs)) as pool:
        results = pool.map(run_fleet, configs)
    print(f"{profile.name}: capacity {loads.capacity:.0f} req/s per instance (exact model)")
    print(f"group from {group}")
    print(table(results))
    settings = {
        "profile": asdict(profile),
        "group": asdict(group),
        "traffic": asdict(traffic),
        "boot_s": base.boot_s,
        "warm_pool_boot_s": base.warm_pool_boot_s,
        "metric_delay_s": base.metric_delay_s,
        "dt": args.dt,
        "pass_scale": args.pass_scale,
        "seed": args.seed,
    }
    write_json(args.out / "simulate.json", results, settings)
    n = len(configs) - 4  # the policies; then LOR, warm pool, predictive, both
    burst_h = traffic.burst_at_s / 3600
    for folder in filter(None, [args.out, args.plots]):
        plot_day(folder / "policies.png", results[:n], "Scaling policies over the day")
        plot_day(folder / "extras.png", results[n - 2 : n - 1] + results[n:], "Extras")
        for name, r in (("burst_template.png", results[0]), ("burst_extras.png", results[n])):
            plot_shed(folder / name, r, (burst_h - 0.25, burst_h + 1.0))
    print(f"wrote {args.out}/simulate.json and plots in {time.perf_counter() - started:.0f} s")
    return results


if __name__ == "__main__":
    main()
