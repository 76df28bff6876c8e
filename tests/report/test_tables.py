"""The one table renderer: exact Markdown of a single run, mean ± std of pooled seeds."""

from __future__ import annotations

from hydraplus.report.markdown import toy_table
from hydraplus.report.tables import Column, at, table

SPIRAL_ROW = {"clean": {"error": 0.0667, "ece": 0.0123, "nll": 0.23456, "predictive_entropy": 0.3},
              "probe": {"offdata_epistemic": 0.8764},
              "tv": {"predictive": 0.01, "aleatoric": 0.02, "epistemic": 0.03},
              "profile": {"params": 228560, "flops": 456789}, "train_seconds": 12.34}


def test_single_run_table_is_the_demo_table() -> None:
    drop = {"clean": {"error": 0.1}, "profile": {"params": 1000}}
    text = toy_table({"ensemble": SPIRAL_ROW, "drop": drop}, "classification")
    assert text == (
        "| model | test error % | ECE % | NLL | entropy | off-data epistemic | TV pred. | TV alea. "
        "| TV epi. | params | FLOPs/input | train s |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        "| ensemble | 6.67 | 1.23 | 0.2346 | 0.3000 | 0.876 | 0.010 | 0.020 | 0.030 | 228,560 | 456,789 "
        "| 12.3 |\n"
        "| drop | 10.00 | – | – | – | – | – | – | – | 1,000 | – | – |"
    )


def test_pooled_seeds_give_mean_and_sample_std() -> None:
    columns = [Column("error %", at("error"), 100.0, ".2f"),
               Column("params", at("params"), fmt=",.0f", spread=False),
               Column("never known", at("missing"))]  # left out
    seeds = [{"error": 0.1, "params": 1234}, {"error": 0.2, "params": 1234}]
    assert table({"hydra+-2": seeds}, columns, seeds=True) == (
        "| method | seeds | error % | params |\n"
        "|---|---:|---:|---:|\n"
        "| hydra+-2 | 2 | 15.00 ± 7.07 | 1,234 |"
    )
