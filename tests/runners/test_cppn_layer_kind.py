"""The binary-digits runner with a CPPN-painted last layer (``--library-kind cppn``)."""

import math

import torch

import pathevo.runners.binary_digits as runner
from pathevo.modules.cppn_layer import CPPNLinearLayer
from pathevo.runners.binary_digits import BinaryDigitsConfig, main
from pathevo.runners.plumbing.cli import parse_config
from tests.runners.test_binary_digits import tiny


def test_cli_selects_the_cppn_kind_scaled_to_its_fan_in():
    cfg = parse_config(BinaryDigitsConfig, "test", ["--library-kind", "cppn"])
    library = runner.fresh_library(cfg, 64, torch.device("cpu"))
    last = library.layers[-1]
    assert isinstance(last, CPPNLinearLayer)
    assert last.max_weight == math.sqrt(3.0 / last.in_features)
    assert float(last.stacked("weights").abs().max()) <= last.max_weight + 1e-6


def test_transfer_with_a_cppn_last_layer_runs(tmp_path):
    summary = main(tiny(tmp_path / "run", pairs=1, library_kind="cppn", max_generations=6))
    for key in ("scratch_generations", "finetune_generations", "pathnet_generations"):
        assert len(summary[key]) == 1 and 1 <= summary[key][0] <= 6
