import pytest

from skelmae.config import LinearConfig, PretrainConfig, load_config, resolve_config_path, to_dict
from skelmae.errors import ConfigError


def test_defaults_follow_the_reference_recipes():
    pre = load_config(PretrainConfig)
    assert (pre.optim.name, pre.optim.lr, pre.optim.min_lr, pre.optim.warmup_epochs) == ("adamw", 1e-3, 5e-4, 20)
    assert pre.optim.betas == [0.9, 0.95] and pre.optim.weight_decay == 0.05
    assert (pre.train.epochs, pre.data.batch_size, pre.method.mae.ratio, pre.data.window) == (400, 128, 0.9, 120)
    lin = load_config(LinearConfig)
    assert (lin.optim.name, lin.optim.lr, lin.optim.min_lr, lin.data.batch_size, lin.train.epochs) == ("sgd", 0.1, 0.0, 256, 100)


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  transformer:\n    depth: 2\ntrain:\n  epochs: 3\n")
    cfg = load_config(PretrainConfig, path, ["train.epochs=5", "method.mae.mask=joint", "data.p_interval=[0.6,0.9]"])
    assert (cfg.model.transformer.depth, cfg.train.epochs, cfg.method.mae.mask, cfg.data.p_interval) == (
        2, 5, "joint", [0.6, 0.9])


def test_base_includes(tmp_path):
    (tmp_path / "base.yaml").write_text("model:\n  transformer:\n    dim: 64\n    depth: 2\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\nmodel:\n  transformer:\n    depth: 3\n")
    cfg = load_config(PretrainConfig, tmp_path / "child.yaml")
    assert (cfg.model.transformer.dim, cfg.model.transformer.depth) == (64, 3)


def test_registry_sections_select_and_validate():
    from skelmae.config import FinetuneConfig, chosen

    cfg = load_config(PretrainConfig, "graph/pretrain")
    assert chosen(cfg.model)["name"] == "gin" and chosen(cfg.method) == {
        "name": "graph_mae", "config": {**chosen(cfg.method)["config"], "mask": "bodypart", "regions": 2}}
    assert chosen(load_config(FinetuneConfig, "graph/finetune").head) == {"name": "strl", "config": {"layers": 3, "dropout": 0.3}}
    with pytest.raises(ConfigError, match="model.transformer.dim"):
        load_config(PretrainConfig, None, ["model.dim=64"])  # the old flat key names the new one
    with pytest.raises(ConfigError, match="unknown backbone 'gcn'"):
        chosen(load_config(PretrainConfig, None, ["model.arch=gcn"]).model)


def test_recipe_values_live_only_in_the_presets():
    from omegaconf import MISSING

    from skelmae.config import OptimConfig, TrainConfig

    assert OptimConfig().lr == MISSING and TrainConfig().epochs == MISSING
    assert load_config(LinearConfig, None, ["optim.lr=0.5"]).optim.lr == 0.5


def test_presets_resolve():
    assert resolve_config_path("demo/pretrain").is_file()
    cfg = load_config(PretrainConfig, "demo/pretrain")
    assert cfg.data.window % cfg.model.transformer.segment == 0


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
    if name.endswith("linear"):
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
        if "clr" not in path.stem:  # the contrastive presets run ST-GCN, which takes any clip length
            assert cfg.data.window % 4 == 0, path  # the transformer's whole segments of 4 frames


def test_contrastive_recipes():
    clr = load_config(PretrainConfig, "ntu60_xsub/skeletonclr_pretrain")
    assert (clr.model.arch, clr.model.stgcn.channels, clr.method.name, clr.data.window) == ("stgcn", 16, "skeletonclr", 50)
    assert (clr.method.skeletonclr.queue, clr.method.skeletonclr.temperature, clr.optim.milestones) == (32768, 0.07, [250])
    attn60, attn120 = (load_config(PretrainConfig, f"{d}/skeattnclr_pretrain") for d in ("ntu60_xview", "ntu120_xsub"))
    assert (attn60.method.skeattnclr.mu, attn120.method.skeattnclr.mu, attn60.model.stgcn.channels) == (1.0, 0.5, 64)
    probe = load_config(LinearConfig, "pku1_xsub/skeattnclr_linear")
    assert (probe.optim.lr, probe.optim.milestones, probe.train.epochs, probe.data.window) == (3.0, [60, 100], 150, 64)


def test_reference_recipes():
    mamp = load_config(PretrainConfig, "ntu60_xsub/mamp_pretrain")
    assert (mamp.method.mae.mask, mamp.method.mae.target, mamp.method.mae.tau, mamp.method.mae.decoder_depth) == ("motion", "motion", 0.8, 3)
    assert (mamp.data.root, mamp.data.train_split, mamp.train.epochs) == ("data/ntu60", "xsub_train", 400)
    ntu120 = load_config(PretrainConfig, "ntu120_xset/mamp_pretrain")
    assert (ntu120.method.mae.tau, ntu120.method.mae.decoder_depth, ntu120.data.test_split) == (0.75, 5, "xset_test")
    mae = load_config(PretrainConfig, "ntu60_xview/mae_pretrain")
    assert (mae.method.mae.mask, mae.method.mae.target, mae.optim.min_lr) == ("random", "coords", 5e-4)
    from skelmae.config import FinetuneConfig

    ft = load_config(FinetuneConfig, "ntu60_xsub/finetune")
    assert (ft.optim.lr, ft.optim.min_lr, ft.optim.layer_decay, ft.model.transformer.drop_path, ft.data.batch_size) == (
        3e-4, 1e-5, 0.8, 0.3, 48)
    assert load_config(FinetuneConfig, "ntu60_xsub/scratch").optim.layer_decay == 1.0
    assert load_config(FinetuneConfig, "ntu60_xsub/semi").semi.fraction == 0.1
