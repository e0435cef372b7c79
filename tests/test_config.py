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


def test_base_accepts_preset_names_and_relative_paths(tmp_path):
    from skelmae.config import FinetuneConfig

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.yaml").write_text("train:\n  epochs: 3\n")
    (tmp_path / "run.yaml").write_text("_base_: [nwucla/finetune, sub/mine.yaml]\ndata:\n  batch_size: 8\n")
    cfg = load_config(FinetuneConfig, tmp_path / "run.yaml")
    assert (cfg.data.root, cfg.train.epochs, cfg.data.batch_size) == ("data/nw_ucla", 3, 8)


def test_missing_base_and_broken_yaml_say_so(tmp_path):
    (tmp_path / "run.yaml").write_text("_base_: [nope.yaml]\n")
    with pytest.raises(ConfigError, match=r"file not found: .*nope\.yaml \(included from .*run\.yaml\)"):
        load_config(PretrainConfig, tmp_path / "run.yaml")
    (tmp_path / "bad.yaml").write_text("data:\n  window: 16\n  p_interval: [0.5, 1\ntrain: {}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml, line 4: not valid YAML"):
        load_config(PretrainConfig, tmp_path / "bad.yaml")


def test_config_errors_are_one_line_naming_key_and_source(tmp_path):
    with pytest.raises(ConfigError) as override:
        load_config(PretrainConfig, None, ["data.batch_size=x"])
    assert str(override.value) == ("config error: data.batch_size: Value 'x' of type 'str' could not be converted "
                                   "to Integer (in override data.batch_size=x)")
    (tmp_path / "base.yaml").write_text("data:\n  batch_size: x\n")
    (tmp_path / "run.yaml").write_text("_base_: base.yaml\n")
    with pytest.raises(ConfigError, match=r"data.batch_size: .* \(in .*base\.yaml\)$") as in_file:
        load_config(PretrainConfig, tmp_path / "run.yaml")
    from skelmae.config import TrainingRunConfig  # no recipe preset: data.window stays unset

    with pytest.raises(ConfigError, match="^config error: data.window: no value given") as missing:
        load_config(TrainingRunConfig)
    assert all("\n" not in str(e.value) for e in (override, in_file, missing))


def test_train_threads_is_applied_and_recorded(tiny_synth, tiny, tmp_path):
    import json

    import torch

    from skelmae.protocols.pretrain import run_pretrain

    before = torch.get_num_threads()
    try:
        run_pretrain(load_config(PretrainConfig, None, tiny.pretrain + [
            f"data.root={tiny_synth}", f"train.output_dir={tmp_path}", "train.epochs=1", "train.threads=1"]))
        assert json.loads((tmp_path / "environment.json").read_text())["threads"] == 1
    finally:
        torch.set_num_threads(before)


def test_evaluate_takes_the_training_keys_of_its_data_and_split():
    from skelmae.protocols.evaluate import data_and_split

    assert data_and_split(None, "", ["data.root=d", "data.test_split=xsub_test"]) == ("d", "xsub_test")
    assert data_and_split("d", "t", []) == ("d", "t")
    with pytest.raises(ConfigError, match="evaluate takes only data.root=DIR and data.test_split=NAME"):
        data_and_split(None, "", ["data.batch_size=4"])
    with pytest.raises(ConfigError, match="given twice"):
        data_and_split("a", "", ["data.root=b"])


@pytest.mark.parametrize(("text", "override", "message"), [
    ("_base_: 5\n", None, "'_base_' must be a file or preset name"),
    ("_base_: [true]\n", None, "'_base_' must be a file or preset name"),
    ("train:\n  epochs: 2\n", "data.batch_size=[1,", "override 'data.batch_size=\\[1,': the value is not valid YAML"),
])
def test_malformed_bases_and_overrides_are_config_errors(tmp_path, text, override, message):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(PretrainConfig, str(path), [override] if override else [])
