"""Shared fixtures: small synthetic datasets and the location of the real third-party data."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Real datasets live outside the repository (never copied in): ../shared/data or $SKELMAE_SHARED_DATA."""
    return Path(os.environ.get("SKELMAE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real test data not found at {path} (set SKELMAE_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """A small synthetic dataset: 6 subjects (4 train, 2 test), 1 repetition, 14 classes."""
    from skelmae.data.synthetic import SynthConfig, write_synthetic

    out = tmp_path_factory.mktemp("synth") / "tiny"
    return write_synthetic(out, SynthConfig(subjects=6, test_subjects=2, repetitions=1), progress=False)


TINY_DATA = ["data.window=16", "data.min_crop=8", "data.batch_size=16", "data.num_workers=0", "train.progress=false"]
TINY_BACKBONE = ["model.transformer.dim=32", "model.transformer.depth=2", "model.transformer.heads=4"]
TINY_DECODER = ["method.mae.decoder_dim=16", "method.mae.decoder_depth=1", "method.mae.decoder_heads=2"]
TINY_TRAINING = TINY_DATA + TINY_BACKBONE  # the one tiny configuration of downstream tests
TINY_PRETRAIN = TINY_TRAINING + TINY_DECODER  # ... and of pre-training


@pytest.fixture(scope="session")
def tiny() -> SimpleNamespace:
    """The shared tiny configuration as override lists: ``data``, ``backbone``, ``decoder``,
    ``training`` (data + backbone) and ``pretrain`` (training + decoder)."""
    return SimpleNamespace(data=TINY_DATA, backbone=TINY_BACKBONE, decoder=TINY_DECODER, training=TINY_TRAINING,
                           pretrain=TINY_PRETRAIN)


@pytest.fixture(scope="session")
def tiny_checkpoints(tiny_synth, tmp_path_factory) -> dict[str, Path]:
    """A one-epoch MAE on ``tiny_synth`` and a two-epoch linear probe on it (window 16, width 32).

    Keys: ``mae`` and ``classifier`` (checkpoint files), ``pretrain_dir`` and ``linear_dir`` (run folders).
    """
    from skelmae.config import LinearConfig, PretrainConfig, load_config
    from skelmae.protocols.linear import run_linear
    from skelmae.protocols.pretrain import run_pretrain
    from skelmae.viz.callbacks import run_plots

    runs = tmp_path_factory.mktemp("tiny_runs")
    run_pretrain(load_config(PretrainConfig, None, TINY_PRETRAIN + [
        f"data.root={tiny_synth}", f"train.output_dir={runs / 'pre'}", "train.epochs=1", "optim.warmup_epochs=0",
    ]), callbacks=run_plots())
    run_linear(load_config(LinearConfig, None, TINY_TRAINING + [
        f"data.root={tiny_synth}", f"init={runs / 'pre' / 'last.pt'}", f"train.output_dir={runs / 'lin'}",
        "train.epochs=2", "augment=false",
    ]), callbacks=run_plots())
    return {
        "mae": runs / "pre" / "last.pt", "classifier": runs / "lin" / "last.pt",
        "pretrain_dir": runs / "pre", "linear_dir": runs / "lin",
    }


@pytest.fixture
def run_downstream(tiny_synth, tiny, tmp_path):
    """Feeds a pre-training checkpoint to finetune, semi, transfer, kNN, evaluate, predict and
    embed, checking each; returns the fine-tuning summaries (protocol -> summary)."""
    import skelmae
    from skelmae.config import FinetuneConfig, KnnConfig, load_config
    from skelmae.data.storage import SkeletonStore
    from skelmae.inference import embed_split
    from skelmae.protocols.evaluate import run_evaluate
    from skelmae.protocols.finetune import run_finetune
    from skelmae.protocols.knn import run_knn

    def run(pretrained: Path, finetune_overrides: tuple[str, ...] = ()) -> dict:
        init = f"init={pretrained}"
        finetune = tiny.data + ["train.epochs=2", "optim.warmup_epochs=0", init, *finetune_overrides]
        results = {}
        for protocol, extra in [("finetune", []), ("semi", ["semi.fraction=0.5"]), ("transfer", [])]:
            cfg = load_config(FinetuneConfig, None, finetune + extra + [f"data.root={tiny_synth}",
                                                                        f"train.output_dir={tmp_path / protocol}"])
            results[protocol] = run_finetune(cfg, protocol)
            assert results[protocol]["test"]["samples"] == 28
        knn = run_knn(load_config(KnnConfig, None, tiny.data + [f"data.root={tiny_synth}", init,
                                                              f"train.output_dir={tmp_path / 'knn'}", "k=[1]"]))
        assert knn["test_samples"] == 28
        evaluated = run_evaluate(results["finetune"]["checkpoint"], batch_size=8, num_workers=0)
        assert evaluated["top1"] == pytest.approx(results["finetune"]["test"]["top1"])
        classifier = skelmae.load(results["finetune"]["checkpoint"])
        store = SkeletonStore(tiny_synth)
        predictions = [classifier.predict(store.sequence(i))[0] for i in store.split("test")[:3]]
        assert len(predictions) == 3 and predictions[0].label in store.classes
        written = embed_split(skelmae.load(pretrained), tiny_synth, out=tmp_path / "tsne.png", perplexity=5)
        assert all(p.is_file() for p in written)
        return results

    return run
