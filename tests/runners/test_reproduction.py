"""The ablation driver: variants over fixed pairs, tables, resuming, user errors."""

import json

import pytest

import pathevo.runners.reproduction as reproduction
from pathevo.runners.plumbing.cli import parse_config
from pathevo.runners.reproduction import ReproductionConfig, main

TINY = "--max-generations 1 --evo.population 3 --resolution 8 --train.minibatches 4"


def test_variants_run_once_and_the_tables_cover_every_finished_variant(tmp_path, monkeypatch):
    cfg = ReproductionConfig(
        variants=("evolve-finetune",),
        pairs=("digits/1v3:digits/1v2", "digits/4v5:digits/6v7"),
        common=TINY,
        out=str(tmp_path / "abl"),
    )
    report = main(cfg)
    assert set(report) == {"evolve-finetune"}
    row = report["evolve-finetune"]
    assert row["pairs"] == [["digits/1v3", "digits/1v2"], ["digits/4v5", "digits/6v7"]]
    assert set(row["statistics"]) == {"all", "related", "unrelated"}
    assert row["command"].startswith("pathevo binary_digits --threshold 0.99")
    assert "--tasks digits/1v3:digits/1v2 digits/4v5:digits/6v7" in row["command"]
    on_disk = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    table = (tmp_path / "abl" / "ablation.md").read_text()
    assert table.count("\n| `") == 1 and "PathNet vs scratch" in table

    def no_rerun(_cfg):
        raise AssertionError("a finished variant must be read back, not run again")

    monkeypatch.setattr(reproduction.binary_digits, "main", no_rerun)
    assert main(cfg) == report
    assert main(ReproductionConfig(report_only=True, out=cfg.out, common=TINY,
                                   pairs=cfg.pairs)) == report  # fmt: skip


def test_unknown_variant_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        parse_config(ReproductionConfig, "test", ["--variants", "nope"])
