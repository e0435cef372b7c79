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


def _schema_for(name: str):
    from skelmae.config import FinetuneConfig, KnnConfig

    if "pretrain" in name:
        return PretrainConfig
    if name.startswith("linear"):
        return LinearConfig
    if name.startswith("knn"):
        return KnnConfig
    return FinetuneConfig


def test_every_preset_loads_with_its_schema():
    from skelmae.config import PRESET_DIR

    presets = sorted(PRESET_DIR.rglob("*.yaml"))
    assert len(presets) > 40
    for path in presets:
        cfg = load_config(_schema_for(path.stem), path)
        assert cfg.data.window % 4 == 0, path


def test_reference_recipes():
    mamp = load_config(PretrainConfig, "ntu60_xsub/mamp_pretrain")
    assert (mamp.mask.strategy, mamp.mask.target, mamp.mask.tau, mamp.model.decoder_depth) == ("motion", "motion", 0.8, 3)
    assert (mamp.data.root, mamp.data.train_split, mamp.train.epochs) == ("data/ntu60", "xsub_train", 400)
    ntu120 = load_config(PretrainConfig, "ntu120_xset/mamp_pretrain")
    assert (ntu120.mask.tau, ntu120.model.decoder_depth, ntu120.data.test_split) == (0.75, 5, "xset_test")
    mae = load_config(PretrainConfig, "ntu60_xview/mae_pretrain")
    assert (mae.mask.strategy, mae.mask.target, mae.optim.min_lr) == ("random", "coords", 5e-4)
    from skelmae.config import FinetuneConfig

    ft = load_config(FinetuneConfig, "ntu60_xsub/finetune")
    assert (ft.optim.lr, ft.optim.min_lr, ft.optim.layer_decay, ft.model.drop_path, ft.data.batch_size) == (
        3e-4, 1e-5, 0.8, 0.3, 48)
    assert load_config(FinetuneConfig, "ntu60_xsub/scratch").optim.layer_decay == 1.0
    assert load_config(FinetuneConfig, "ntu60_xsub/semi").semi.fraction == 0.1
