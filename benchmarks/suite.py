"""Fusion candidates over the evaluation suite: nDCG@10 per dataset, mean and worst case.

Every dataset of ``--suite`` (default ``benchmarks/suite.toml``) is indexed once and each of
its judged queries retrieved once per first stage; every setting then ranks from those lists
as a hybrid search does (``searchkit.eval.suite``). Run on the ``tune`` splits (train/dev: the
defaults are chosen there) and on the ``test`` splits (reported). The margin of a setting on a
dataset is its nDCG@10 minus max(dense, lexical) there; the chosen default must stay above
-0.005 on every dataset.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import common

NAME = "suite"
SUITE = common.REPO / "benchmarks" / "suite.toml"


def settings() -> list[Any]:
    from searchkit.eval.suite import Setting

    out = [Setting("dense", {"mode": "dense"}), Setting("lexical", {"mode": "lexical"})]
    out += [Setting("rrf k=60", {"mode": "hybrid", "fusion": "rrf", "rrf_k": 60})]
    for fusion, weights in (
        ("weighted", (0.4, 0.5)),
        ("dbsf", (0.5,)),
        ("gated", (0.3, 0.4, 0.5, 0.6)),
    ):
        for w in weights:
            out.append(
                Setting(f"{fusion} {w:g}", {"mode": "hybrid", "fusion": fusion, "weight": w})
            )
    return out


def main() -> None:
    parser = common.make_parser(NAME, __doc__)
    parser.add_argument("--suite", type=Path, default=SUITE, help="suite TOML file")
    parser.add_argument(
        "--index-root", type=Path, default=None, help="indexes (default: the file's)"
    )
    parser.add_argument("--roles", default="tune,test", help="split roles to run")
    parser.add_argument("--only", default=None, help="comma-separated dataset names")
    args, header = common.start(parser, NAME)
    import dataclasses

    from searchkit.defaults import DEFAULT_FUSION, DEFAULT_WEIGHT
    from searchkit.eval.suite import load_suite, run_suite

    suite = load_suite(args.suite)
    if args.index_root is not None:
        suite = dataclasses.replace(suite, index_root=args.index_root)
    if args.only:
        keep = set(args.only.split(","))
        suite = dataclasses.replace(suite, sets=[s for s in suite.sets if s.name in keep])
    default = f"{DEFAULT_FUSION} {DEFAULT_WEIGHT:g}"
    results: dict[str, Any] = {"default": default}
    tables = []
    for role in args.roles.split(","):
        result = run_suite(suite, settings(), role=role, progress=False)
        results[role] = result.to_dict()
        tables.append(_table(result, role, default))
    common.report(NAME, args, header, tables, results)


def _table(result: Any, role: str, default: str) -> common.Table:
    names = list(result.datasets)
    summary = result.summary()
    table = common.Table(
        f"nDCG@10 on the {role} splits (default: {default})",
        ["setting", *names, "mean", "margin mean", "margin worst", "worst on"],
        note="margin = nDCG@10 - max(dense, lexical) on the dataset.",
    )
    for s in result.settings:
        row = summary[s.label]
        table.add(
            s.label + (" *" if s.label == default else ""),
            *(result.datasets[n]["metrics"][s.label]["nDCG@10"] for n in names),
            row["mean"], row["margin_mean"], row["margin_worst"], row["worst_dataset"],
        )  # fmt: skip
    return table


if __name__ == "__main__":
    sys.exit(main())
