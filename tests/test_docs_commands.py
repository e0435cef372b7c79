"""Every shell command of README.md and docs/*.md runs, so the documentation cannot drift from the CLI.

Each ``skelmae ...`` line (also ``python -m skelmae`` and ``torchrun ... -m skelmae``) of a
fenced shell block is (a) parsed by the real Click command, so an unknown option or an extra
argument fails; (b) for training and ``config`` commands, resolved into its configuration as
``skelmae config PROTOCOL`` does, so an unknown key or preset fails; (c) run end to end with
the tiny overrides of ``conftest`` appended, all commands of one document in order in one
temporary folder (later commands use the checkpoints of earlier ones).

Usage lines (placeholders in capitals, ``[--optional ...]`` groups, ``a|b`` choices) are
parsed with every optional group and the first choice; one without capitals also runs
without its optional groups. Paths of the documents are stood in for by real or made data
(INPUTS) when a command reads them; ``<run>`` and ``...`` in a path match the newest run of
the same document first. What cannot run here is listed in SKIPPED and SKIPPED_DOCUMENTS,
with the reason.
"""

from __future__ import annotations

import pickle
import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from skelmae.cli import SCHEMAS, app

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}

# Document path -> what stands in for it: ``shared:<path>`` is a file or folder of the real
# third-party data (linked, never copied into the repository), ``made:<name>`` one built
# once per session by the ``made`` fixture.
INPUTS = {
    "nturgb+d_skeletons": "shared:ntu_rgbd_samples/raw_skeletons",  # 8 genuine NTU60 samples
    "PKUMMD": "shared:pku_mmd_v1_samples",  # 15 PKU-MMD phase-1 sequences, all labels and splits
    "all_sqe": "shared:nw_ucla/all_sqe",  # the whole NW-UCLA set
    "gym_hrnet.pkl": "shared:pyskl_format_custom_hrnet/ntu60_hrnet.pkl",  # a real PYSKL 2D pickle
    "ntu60_hrnet.pkl": "shared:pyskl_format_custom_hrnet/ntu60_hrnet.pkl",
    "S001C001P001R001A001.skeleton": "shared:ntu_rgbd_samples/raw_skeletons/S001C001P001R001A001.skeleton",
    "S001C001P001R001A050.skeleton": "shared:ntu_rgbd_samples/raw_skeletons/S001C001P001R001A050.skeleton",
    "data/ntu60": "made:ntu60",  # the NTU samples, prepared
    "data/nw_ucla": "made:nw_ucla",  # 30 NW-UCLA clips (subject 1, repetition 0), prepared
    "data/pku_mmd2": "made:pku",  # two PKU-MMD sequences, prepared (the pku2_xsub presets' root)
    "data/ntu60_2d": "made:pyskl",  # 16 clips of each split of the PYSKL pickle, prepared (COCO-17, 2D)
    "data/synth": "made:synth",  # the tiny synthetic set of conftest
    "NTU60_CS.npz": "made:npz",  # data/ntu60 exported for CTR-GCN
    "my_clips.pkl": "made:pyskl_export",  # data/ntu60 exported as a PYSKL pickle
    "clip.npy": "made:clip",  # the first sequence of data/ntu60
    "runs/pretrain/last.pt": "made:mae",  # a one-epoch tiny MAE on data/ntu60
    "runs/pretrain/<run>/last.pt": "made:mae",
    "runs/linear/last.pt": "made:classifier",  # a one-epoch tiny linear probe of it
    "runs/finetune/last.pt": "made:classifier",
    "runs/finetune/<run>/best.pt": "made:classifier",
}

# Commands (by the start of their words) that are parsed and resolved but not run here.
SKIPPED = {
    "torchrun": "starts several processes (GPUs, other machines); tests/engine runs 2-process gloo training",
    "skelmae bench": "times paper-size models for minutes; tests/test_bench.py runs the stages small",
    "skelmae data prepare ntu120": "needs NTU120's second archive (S018-S032); the samples are all from NTU60",
    "skelmae data prepare pku-mmd --raw PKUMMDv2": "needs PKU-MMD phase 2; the samples are from phase 1",
}
SKIPPED_DOCUMENTS = {  # documents whose commands are parsed and resolved but not run here
    "docs/own-data.md": "its Python block writes the raw files; tests/test_own_data_doc.py runs the walk-through",
}

# The real stand-ins are small (data/ntu60: 4 training clips of 4 classes), too small to
# carve a class-stratified validation split from; classifier runs train on all of them.
NO_VALIDATION = ["data.val_fraction=0"]
TINY_STGCN = ["model.stgcn.channels=8", "model.stgcn.dim=32"]  # used where a command picks ST-GCN

EXTRA_OPTIONS = {  # appended to the document's command: small, quick and quiet, same behaviour
    "data prepare": ["--workers", "1", "--no-progress"],
    "data export": ["--no-progress"],
    "data show": ["--stride", "8", "--sheet-frames", "2"],
    "visualize": ["--stride", "8", "--sheet-frames", "2"],
    "embed": ["--max-samples", "16"],
}


@dataclass
class DocCommand:
    document: str
    line: int
    words: list[str]  # after the program: ["pretrain", "-c", ...]
    runner: str  # skelmae | python -m skelmae | torchrun
    minimal: list[str]  # what runs: without the optional groups of a usage line

    @property
    def text(self) -> str:
        return " ".join([self.runner, *self.words])

    def __str__(self) -> str:
        return f"{self.document}:{self.line}: {self.text}"


COMMAND_START = re.compile(r"^(?:\$\s+)?(?:skelmae\s|python3? -m skelmae\s|torchrun\s.*-m skelmae\s)")
OPTIONAL_GROUP = re.compile(r"\[(-[^\[\]]*)\]")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(:\d+)?$")
TYPED_PLACEHOLDERS = {"N": "2"}  # usage placeholders of numeric options, parsed as this value


def _program(words: list[str]) -> tuple[str, list[str]] | None:
    """``(runner, arguments)`` of a ``skelmae`` invocation, or None for another program."""
    if words[:1] == ["skelmae"]:
        return "skelmae", words[1:]
    if len(words) > 2 and words[0] in ("python", "python3") and words[1:3] == ["-m", "skelmae"]:
        return "python -m skelmae", words[3:]
    if words[:1] == ["torchrun"] and "-m" in words and words[words.index("-m") + 1:][:1] == ["skelmae"]:
        return "torchrun", words[words.index("-m") + 2:]
    return None


def _usage_words(line: str, keep_optional: bool) -> list[str]:
    text = OPTIONAL_GROUP.sub(r"\1" if keep_optional else "", line)
    words = [w for w in shlex.split(text, comments=True) if w != "..."]
    return [w.split("|")[0] if "|" in w and w != "|" else w for w in words]


def _shell_lines(block: str) -> list[tuple[int, str]]:
    """``(offset, line)`` of a block's lines, continuation lines (``\\``) joined onto the first."""
    lines: list[tuple[int, str]] = []
    continued = False
    for offset, line in enumerate(block.split("\n")):
        if continued:
            lines[-1] = (lines[-1][0], lines[-1][1] + " " + line.strip())
        else:
            lines.append((offset, line.strip()))
        continued = line.rstrip().endswith("\\")
        if continued:
            lines[-1] = (lines[-1][0], lines[-1][1].rstrip("\\ "))
    return lines


def doc_commands(path: Path) -> list[DocCommand]:
    """The skelmae commands of the fenced shell blocks of ``path``."""
    text = path.read_text(encoding="utf-8")
    document = path.name if path.parent == REPO else f"docs/{path.name}"
    commands = []
    for block in re.finditer(r"^```([\w-]*)[^\n]*\n(.*?)^```", text, re.S | re.M):
        if block.group(1) not in SHELL_BLOCKS:
            continue
        first_line = text[: block.start(2)].count("\n") + 1
        for offset, line in _shell_lines(block.group(2)):
            line = line.removeprefix("$ ")
            if not COMMAND_START.match(line):
                continue
            for full, minimal in zip(_segments(_usage_words(line, True)), _segments(_usage_words(line, False))):
                found = _program(full)
                if found is not None:
                    runner, words = found
                    commands.append(DocCommand(document, first_line + offset, [TYPED_PLACEHOLDERS.get(w, w) for w in words],
                                               runner, _program(minimal)[1]))
    return commands


def _segments(words: list[str]) -> list[list[str]]:
    """Split a shell line at ``&&``, ``;`` and ``|`` into the commands it runs."""
    segments: list[list[str]] = [[]]
    for word in words:
        if word in ("&&", ";", "|", "||"):
            segments.append([])
        else:
            segments[-1].append(word)
    return [s for s in segments if s]


ALL_COMMANDS = [command for path in DOCUMENTS for command in doc_commands(path)]


def parse(words: list[str]) -> tuple[list[str], dict]:
    """The command names and parameters of ``skelmae WORDS``, parsed by the real (Typer-built Click) commands."""
    command = typer.main.get_command(app)
    ctx, names = None, []
    while isinstance(command, TyperGroup):
        ctx = typer.Context(command, info_name=" ".join(["skelmae", *names]), parent=ctx)
        assert words, f"'{ctx.info_name}' needs a command"
        name, *words = words
        sub = command.get_command(ctx, name)
        assert sub is not None, f"no command {name!r} in '{ctx.info_name}'"
        command, names = sub, [*names, name]
    return names, command.make_context(names[-1], list(words), parent=ctx, resilient_parsing=False).params


def resolve(names: list[str], params: dict):
    """The configuration a training, knn or ``config`` command would run with, or None for other commands."""
    from skelmae import config as configs
    from skelmae.protocols.finetune import RECIPES

    protocol = params["protocol"] if names == ["config"] else names[0]
    if protocol not in SCHEMAS or names[0] not in (*SCHEMAS, "config"):
        return None
    schema = getattr(configs, SCHEMAS[protocol])
    return configs.load_config(schema, params.get("config"), list(params.get("overrides") or []),
                               preset=RECIPES.get(protocol))


def test_skip_table_names_documented_commands():
    """A skip entry whose command left the documents would silently hide a new one."""
    for start in SKIPPED:
        assert any(command.text.startswith(start) for command in ALL_COMMANDS), start
    assert set(SKIPPED_DOCUMENTS) <= {command.document for command in ALL_COMMANDS}


def test_documents_have_commands():
    documents = {command.document for command in ALL_COMMANDS}
    assert {"README.md", "docs/datasets.md", "docs/visualisation-and-inference.md"} <= documents
    assert len(ALL_COMMANDS) > 30


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=str)
def test_command_parses_and_resolves(command: DocCommand):
    try:
        names, params = parse(command.words)
        resolve(names, params)
    except typer.TyperException as exc:  # the command line's usage errors (unknown option, extra argument, ...)
        pytest.fail(f"{command}\n  {type(exc).__name__}: {exc}")


# -- running the documents ----------------------------------------------------------------


runner = CliRunner()


def _prepared(out: Path, fmt: str, raw: Path) -> Path:
    from skelmae.data.prepare import prepare

    prepare(fmt, [raw], out, workers=1, progress=False)
    return out


def _nw_ucla_sample(shared_data: Path, out: Path) -> Path:
    """Subject 1's first repetitions of NW-UCLA (all classes and views): a quick stand-in for the whole set."""
    out.mkdir()
    for source in sorted((shared_data / "nw_ucla" / "all_sqe").glob("a*_s01_e00_v*.json")):
        (out / source.name).symlink_to(source)
    return out


def _pku_sample(shared_data: Path, out: Path) -> Path:
    """Two PKU-MMD sequences (one x-sub train, one x-sub test) with the official labels and splits."""
    whole = shared_data / "pku_mmd_v1_samples"
    sequences = [whole / "Data" / "PKU_Skeleton_Renew" / name for name in ("0005-L.txt", "0299-L.txt")]
    for source in [*sequences, *(whole / "Label").rglob("*.txt"), *(whole / "Split").iterdir()]:
        link = out / source.relative_to(whole)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source)
    return out


def _pyskl_sample(shared_data: Path, out: Path, per_split: int = 16) -> Path:
    """The first clips of each split of the real PYSKL pickle: a quick stand-in for a PYSKL data set."""
    with open(shared_data / "pyskl_format_custom_hrnet" / "ntu60_hrnet.pkl", "rb") as f:
        whole = pickle.load(f)
    split = {name: list(clips[:per_split]) for name, clips in whole["split"].items()}
    kept = {clip for clips in split.values() for clip in clips}
    with open(out, "wb") as f:
        pickle.dump({"split": split, "annotations": [a for a in whole["annotations"] if a["frame_dir"] in kept]}, f)
    return out


@pytest.fixture(scope="session")
def made(shared_data, tiny, tiny_synth, tmp_path_factory) -> dict[str, Callable[[], Path]]:
    """The ``made:`` stand-ins of INPUTS, each built on first use."""
    from skelmae.config import LinearConfig, PretrainConfig, load_config
    from skelmae.data.formats.export import export_npz, export_pyskl
    from skelmae.data.storage import SkeletonStore
    from skelmae.protocols.linear import run_linear
    from skelmae.protocols.pretrain import run_pretrain

    root = tmp_path_factory.mktemp("doc_inputs")
    cache: dict[str, Path] = {}

    def ntu60() -> Path:
        return _prepared(root / "ntu60", "ntu60", shared_data / "ntu_rgbd_samples" / "raw_skeletons")

    def mae() -> Path:
        run_pretrain(load_config(PretrainConfig, "ntu60_xsub/mamp_pretrain", tiny.pretrain + [
            f"data.root={get('ntu60')}", f"train.output_dir={root / 'mae'}", "train.epochs=1", "optim.warmup_epochs=0"]))
        return root / "mae" / "last.pt"

    def classifier() -> Path:
        run_linear(load_config(LinearConfig, "ntu60_xsub/linear", tiny.training + [
            f"data.root={get('ntu60')}", f"init={get('mae')}", f"train.output_dir={root / 'linear'}", "train.epochs=1",
            *NO_VALIDATION]))
        return root / "linear" / "last.pt"

    def clip() -> Path:
        np.save(root / "clip.npy", SkeletonStore(get("ntu60")).sequence(0))
        return root / "clip.npy"

    builders = {
        "ntu60": ntu60, "mae": mae, "classifier": classifier, "clip": clip, "synth": lambda: tiny_synth,
        "pku": lambda: _prepared(root / "pku", "pku-mmd", _pku_sample(shared_data, root / "PKUMMD")),
        "nw_ucla": lambda: _prepared(root / "nw_ucla", "nw-ucla", _nw_ucla_sample(shared_data, root / "all_sqe")),
        "pyskl": lambda: _prepared(root / "pyskl", "pyskl", _pyskl_sample(shared_data, root / "pyskl.pkl")),
        "npz": lambda: export_npz(get("ntu60"), root / "NTU60_CS.npz", protocol="xsub", progress=False),
        "pyskl_export": lambda: export_pyskl(get("ntu60"), root / "my_clips.pkl", progress=False),
    }

    def get(name: str) -> Path:
        if name not in cache:
            cache[name] = Path(builders[name]())
        return cache[name]

    return {name: (lambda name=name: get(name)) for name in builders}


class Workspace:
    """The folder one document's commands run in; places INPUTS when a command reads them."""

    def __init__(self, path: Path, shared_data: Path, made: dict[str, Callable[[], Path]]):
        self.path, self.shared_data, self.made = path, shared_data, made

    def concrete(self, word: str) -> str:
        """``word`` with a ``<run>`` / ``...`` path replaced by the newest match in the workspace."""
        key, is_override, value = word.rpartition("=")
        if is_override:
            return f"{key}={self.concrete(value)}"
        if "<run>" not in word and "/.../" not in word:
            return word
        pattern = word.replace("<run>", "*").replace("/.../", "/**/")
        matches = sorted(self.path.glob(pattern), key=lambda p: p.stat().st_mtime)
        if matches:
            return str(matches[-1].relative_to(self.path))
        self.place(word)
        return word.replace("<run>", "doc-input")

    def place(self, name: str) -> None:
        source = INPUTS.get(name)
        target = self.path / name.replace("<run>", "doc-input")
        if source is None or target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        kind, _, where = source.partition(":")
        if kind == "shared":
            target.symlink_to(self.shared_data / where)
        else:
            made = self.made[where]()
            (shutil.copytree if made.is_dir() else shutil.copy2)(made, target)

    def inputs(self, words: list[str], cfg) -> list[str]:
        """What a command reads: its words and override values except ``--out``'s, the config's data and init."""
        read = [w.partition("=")[2] or w for i, w in enumerate(words) if i == 0 or words[i - 1] != "--out"]
        if cfg is not None:
            read += [cfg.data.root, getattr(cfg, "init", "")]
        return read


def _extra(names: list[str], tiny) -> list[str]:
    one_epoch = ["train.epochs=1", "optim.warmup_epochs=0"]
    if names[0] == "pretrain":
        return tiny.pretrain + TINY_STGCN + one_epoch
    if names[0] in ("linear", "finetune", "semi", "transfer", "scratch"):
        return tiny.training + TINY_STGCN + one_epoch + NO_VALIDATION
    if names[0] == "knn":
        return tiny.data
    return EXTRA_OPTIONS.get(" ".join(names), [])


def _skip_reason(command: DocCommand) -> str | None:
    return next((why for start, why in SKIPPED.items() if command.text.startswith(start)), None)


def _runnable(document: str) -> list[DocCommand]:
    return [c for c in ALL_COMMANDS if c.document == document and document not in SKIPPED_DOCUMENTS and not _skip_reason(c)
            and not any(PLACEHOLDER.match(w) for w in c.minimal)]


@pytest.fixture
def one_torch_thread():
    """One torch thread while a document runs: ``pytest -n 2`` keeps two on two cores, not four."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("document", sorted({c.document for c in ALL_COMMANDS}))
def test_document_commands_run(document, tmp_path, shared_data, made, tiny, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tmp_path)
    workspace = Workspace(tmp_path, shared_data, made)
    for command in _runnable(document):
        words = [workspace.concrete(w) for w in command.minimal]
        names, params = parse(words)
        for name in workspace.inputs(words, resolve(names, params)):
            workspace.place(name)
        result = runner.invoke(app, [*words, *_extra(names, tiny)])
        assert result.exit_code == 0, f"{command}\n{result.output}{result.exception or ''}"
