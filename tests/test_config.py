import pytest

from skelmae.config import LinearConfig, PretrainConfig, load_config, resolve_config_path, to_dict
from skelmae.errors import ConfigError


def test_defaults_follow_the_reference_recipes():
    pre = load_config(PretrainConfig)
    assert (pre.optim.name, pre.optim.lr, pre.optim.min_lr, pre.optim.warmup_epochs) == ("adamw", 1e-3, 5e-4, 20)
    assert pre.optim.betas == [0.9, 0.95] and pre.optim.weight_decay == 0.05
    assert (pre.train.epochs, pre.data.batch_size, pre.mask.ratio, pre.data.window) == (400, 128, 0.9, 120)
    lin = load_config(LinearConfig)
    assert (lin.optim.name, lin.optim.lr, lin.optim.min_lr, lin.data.batch_size, lin.train.epochs) == ("sgd", 0.1, 0.0, 256, 100)


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  depth: 2\ntrain:\n  epochs: 3\n")
    cfg = load_config(PretrainConfig, path, ["train.epochs=5", "mask.strategy=joint", "data.p_interval=[0.6,0.9]"])
    assert (cfg.model.depth, cfg.train.epochs, cfg.mask.strategy, cfg.data.p_interval) == (2, 5, "joint", [0.6, 0.9])


def test_base_includes(tmp_path):
    (tmp_path / "base.yaml").write_text("model:\n  dim: 64\n  depth: 2\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\nmodel:\n  depth: 3\n")
    cfg = load_config(PretrainConfig, tmp_path / "child.yaml")
    assert (cfg.model.dim, cfg.model.depth) == (64, 3)


def test_presets_resolve():
    assert resolve_config_path("demo/pretrain").is_file()
    cfg = load_config(PretrainConfig, "demo/pretrain")
    assert cfg.data.window % cfg.model.segment == 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.epoch=3"], "epoch"),
        (["train.epochs=three"], "three"),
        (["epochs"], "section.key=value"),
    ],
)
def test_bad_overrides_fail_loudly(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(PretrainConfig, None, overrides)


def test_unknown_config_lists_presets():
    with pytest.raises(ConfigError, match="demo/pretrain"):
        load_config(PretrainConfig, "no/such")


def test_to_dict_round_trip():
    cfg = load_config(LinearConfig, None, ["init=x.pt"])
    assert to_dict(cfg)["init"] == "x.pt"
