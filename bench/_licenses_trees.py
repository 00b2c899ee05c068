"""``bench.licenses --verify-only --trees A,B``: the alternated A/B of licences trees, summed up per
tree (each figure's median over its rounds, and the rounds' values) and printed."""

from __future__ import annotations

import statistics

# What the alternation's summary gives per tree: the median of its rounds, and each round's value.
AB_FIGURES = ("server_cpu_ms_per_verify", "server_cpu_ms_per_livez", "database_cpu_ms_per_verify", "verify_ratio",
              "verify_per_s", "machine_cores_verify", "verify_p99_ms")


def alternation(runs: list[dict], trees: list[str]) -> dict:
    """Per tree (labelled A, B, ... in the order given): each figure's median over its rounds and
    the rounds' values in order (``ab_A_server_cpu_ms_per_verify``, ``..._runs``)."""
    summary: dict = {}
    for index, tree in enumerate(trees):
        mine = [run for run in runs if run["tree"] == tree]
        figures: dict = {"tree": tree, "use_records_ok": all(run["use_records_ok"] for run in mine),
                         "non_2xx": sum(run["verify_non_2xx"] for run in mine)}
        for name in AB_FIGURES:
            values = [run[name] for run in mine]
            if None not in values:
                figures[name] = round(statistics.median(values), 4)
                figures[f"{name}_runs"] = values
        summary[chr(ord("A") + index)] = figures  # bench.licenses takes at most 26 trees
    return summary


def print_alternation(runs: list[dict], summary: dict) -> None:
    labels = {figures["tree"]: label for label, figures in summary.items()}
    for run in runs:
        print(f"round {run['round']} {labels[run['tree']]} ({run['tree']}): verify_ratio {run['verify_ratio']:.3f} "
              f"({run['verify_per_s']:,.0f} against {run['trivial_per_s']:,.0f} req/s), server CPU "
              f"{run['server_cpu_ms_per_verify']} ms/verify, {run['server_cpu_ms_per_livez']} ms/livez, "
              f"database {run['database_cpu_ms_per_verify']} ms/verify; machine cores busy "
              f"{run['machine_cores_livez']} / {run['machine_cores_verify']}; non-2xx {run['verify_non_2xx']}, "
              f"use records ok {run['use_records_ok']}; load {run['loadavg_1min']}")
    for label, figures in summary.items():
        medians = ", ".join(f"{name} {figures[name]}" for name in AB_FIGURES if name in figures)
        print(f"medians {label} ({figures['tree']}): {medians}; use records ok {figures['use_records_ok']}")
