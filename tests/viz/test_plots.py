"""Training curves, confusion matrix, t-SNE scatter."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from skelmae.engine.runs import RunDir
from skelmae.viz.plots import plot_embedding, plot_training_curves, read_metrics, tsne, write_confusion_matrix


def test_curves_from_metrics_with_a_resumed_epoch_and_a_torn_line(tmp_path):
    lines = [
        {"step": 10, "epoch": 1, "train/loss": 2.0, "train/lr": 0.1},
        {"step": 20, "epoch": 2, "train/loss": 1.5, "train/lr": 0.05, "test/top1": 30.0, "test/top5": 70.0},
        {"step": 20, "epoch": 2, "train/loss": 1.4, "train/lr": 0.05, "test/top1": 31.0, "test/top5": 71.0},
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 30, "epo', encoding="utf-8")
    assert len(read_metrics(path)) == 3
    out = plot_training_curves(path, tmp_path / "curves.png")
    with Image.open(out) as image:
        assert image.size[0] >= 3 * 400  # loss, learning rate and accuracy panels


def test_no_curves_without_figures(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "note": "x"}\n', encoding="utf-8")
    assert plot_training_curves(tmp_path / "metrics.jsonl", tmp_path / "c.png") is None
    assert plot_training_curves(tmp_path / "missing.jsonl", tmp_path / "c.png") is None
    assert not (tmp_path / "c.png").exists()


def test_plots_come_from_the_callback_not_the_run_dir(tmp_path):
    run = RunDir(tmp_path / "run", tensorboard=False)
    for epoch in (1, 2, 3):
        run.log(epoch * 5, epoch=epoch, **{"train/loss": 1.0 / epoch, "train/lr": 0.01})
    run.close()
    assert not (tmp_path / "run" / "curves.png").exists()
    RunDir(tmp_path / "other", active=False).close()
    assert not (tmp_path / "other").exists()


def test_confusion_matrix_png_and_csv(tmp_path):
    cm = np.array([[3, 1, 0], [0, 2, 0], [1, 0, 0]])
    png, csv_path = write_confusion_matrix(cm, ["a", "b", "c"], tmp_path / "confusion")
    assert png == tmp_path / "confusion.png" and png.is_file()
    rows = list(csv.reader(csv_path.open(encoding="utf-8")))
    assert rows[0] == ["true \\ predicted", "a", "b", "c"]
    assert [[int(v) for v in r[1:]] for r in rows[1:]] == cm.tolist() and [r[0] for r in rows[1:]] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="3 classes"):
        write_confusion_matrix(np.zeros((2, 2)), ["a", "b", "c"], tmp_path / "bad")


def test_large_confusion_matrix_without_cell_labels(tmp_path):
    rng = np.random.default_rng(0)
    png, _ = write_confusion_matrix(rng.integers(0, 5, (60, 60)), [f"class {i}" for i in range(60)], tmp_path / "cm")
    assert png.is_file()


def test_linear_probe_writes_its_confusion_matrix(tiny_checkpoints):
    run = tiny_checkpoints["linear_dir"]
    summary = json.loads((run / "summary.json").read_text())
    cm = read_confusion(run / "confusion.csv")
    assert cm.sum() == summary["test"]["samples"]
    assert 100 * np.trace(cm) / cm.sum() == pytest.approx(summary["test"]["top1"], abs=1e-3)
    assert (run / "confusion.png").is_file() and (run / "curves.png").is_file()
    assert (tiny_checkpoints["pretrain_dir"] / "curves.png").is_file()


def test_tsne_is_seeded_and_separates_clusters(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 10)
    features = rng.normal(size=(30, 16)) + 20 * np.eye(16)[labels]
    a, b = tsne(features, seed=3), tsne(features, seed=3)
    assert a.shape == (30, 2) and np.allclose(a, b)
    centres = np.stack([a[labels == k].mean(0) for k in range(3)])
    spread = max(np.linalg.norm(a[labels == k] - centres[k], axis=1).mean() for k in range(3))
    assert min(np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i)) > 2 * spread
    out = plot_embedding(a, labels, ["x", "y", "z"], tmp_path / "emb.png", "three blobs")
    assert out.is_file()
    with pytest.raises(ValueError, match="at least 4"):
        tsne(features[:3])


def read_confusion(path):
    return np.array([[int(v) for v in row[1:]] for row in list(csv.reader(path.open(encoding="utf-8")))[1:]])


def test_finetuning_and_evaluate_write_confusion_matrices(tiny_synth, tiny_checkpoints, tmp_path):
    from skelmae.config import FinetuneConfig, load_config
    from skelmae.protocols.evaluate import run_evaluate
    from skelmae.protocols.finetune import run_finetune
    from skelmae.viz.callbacks import run_plots

    cfg = load_config(FinetuneConfig, None, [
        "data.window=16", "data.min_crop=8", "data.batch_size=16", "data.num_workers=0", "data.val_fraction=0",
        "model.transformer.dim=32", "model.transformer.depth=1", "model.transformer.heads=4", "train.progress=false", "train.epochs=1",
        "optim.warmup_epochs=0", f"data.root={tiny_synth}", f"train.output_dir={tmp_path / 'ft'}",
    ])
    summary = run_finetune(cfg, protocol="scratch", callbacks=run_plots())
    cm = read_confusion(tmp_path / "ft" / "confusion.csv")
    assert cm.sum() == summary["test"]["samples"] and (tmp_path / "ft" / "confusion.png").is_file()
    assert 100 * np.trace(cm) / cm.sum() == pytest.approx(summary["test"]["top1"], abs=1e-3)

    result = run_evaluate(str(tiny_checkpoints["classifier"]), out_dir=str(tmp_path / "eval"), batch_size=8, num_workers=0,
                          callbacks=run_plots())
    cm = read_confusion(tmp_path / "eval" / "confusion.csv")
    assert cm.sum() == result["samples"] and (tmp_path / "eval" / "confusion.png").is_file()
    assert 100 * np.trace(cm) / cm.sum() == pytest.approx(result["top1"], abs=1e-3)
