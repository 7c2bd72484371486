"""End to end: PathNet transfer learns task B in fewer generations than evolution from scratch.

The runner with its defaults (the paper's L, M, N, population, T, minibatch and noise; digits at
28x28) on four random task pairs at seed 0, in serial mode, so the run is reproducible. Measured
on the development machine: scratch [8, 58, 23, 13] generations, PathNet [6, 57, 8, 11] (mean
25.5 vs 20.5: a 1.24x speedup, PathNet ahead on every pair). The assertion only asks for PathNet
to be ahead on average with a margin of 5%.
"""

import statistics

from runners.binary_digits import BinaryDigitsConfig, main


def test_pathnet_transfer_needs_fewer_generations_than_scratch(tmp_path):
    cfg = BinaryDigitsConfig(
        seed=0,
        pairs=4,
        max_generations=100,
        run_dir=str(tmp_path / "run"),
        progress=False,
        image_every=10,
    )
    summary = main(cfg)
    scratch = statistics.mean(summary["scratch_generations"])
    pathnet = statistics.mean(summary["pathnet_generations"])
    report = f"scratch {summary['scratch_generations']}, pathnet {summary['pathnet_generations']}"
    assert all(summary["pathnet_solved"]), report
    assert pathnet <= 0.95 * scratch, report
    assert summary["speedup_vs_scratch"] > 1.0
    assert 0.0 < summary["module_reuse_mean"] < 1.0  # B reuses some of A's frozen modules
