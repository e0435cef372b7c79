"""What an import did to the coordinates, recorded once: in the manifest and in checkpoints.

A dataset stores sequences after its format's preprocessing (centring, 2D image
normalisation, the persons kept). Prediction reads new clips that may still be raw (a
``.npy`` of camera or pixel coordinates), so the dataset records the steps as a
:class:`Preprocessing` (manifest key ``"preprocessing"``) and a checkpoint carries it in
its ``data`` entry; :meth:`Preprocessing.apply` turns a raw clip into what the dataset
stores. Example entry (NTU 60)::

    "preprocessing": {"known": true, "centre": "first_frame", "centre_joint": "spine_mid",
                      "centre_index": 1, "normalise_2d": "none", "image_size": null,
                      "persons": 2, "person_order": "motion", "second_actor": "zeros",
                      "note": "SGN/CTR-GCN: bodies denoised and assigned to actors"}

A manifest or checkpoint without the key (written before it existed) reads as
:data:`UNKNOWN`, not as "nothing was done": nothing can then be applied.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from skelmae.data.layouts import SkeletonLayout
from skelmae.errors import SkelmaeError

__all__ = ["Preprocessing", "PreprocessingError", "UNKNOWN", "CENTRES", "NORMALISATIONS", "PERSON_ORDERS",
           "SECOND_ACTORS", "NORMALISED_LIMIT"]

CENTRES = ("none", "first_frame")
NORMALISATIONS = ("none", "image_size")
PERSON_ORDERS = ("as_given", "motion")
SECOND_ACTORS = ("zeros", "duplicate")
# x, y within this bound are taken as already normalised: image normalisation maps the image
# onto [-1, 1], and a pixel skeleton this small (3 px) is no measurement.
NORMALISED_LIMIT = 1.5

_ORDER_WORDS = {"as_given": "first ones of the input", "motion": "most moving first"}


class PreprocessingError(SkelmaeError, ValueError):
    """A preprocessing record is malformed, or cannot be applied to a clip."""


@dataclass(frozen=True)
class Preprocessing:
    """The coordinate steps of an import, in the order :meth:`apply` runs them.

    - ``persons``: persons kept (None: not limited); a clip with more keeps the first ones
      (``person_order="as_given"``) or the most moving ones, most moving first (``"motion"``,
      the NTU actor rule), and one with fewer is padded with zero persons;
    - ``normalise_2d="image_size"``: pixel x, y -> ``(x - w/2) / (w/2)``, ``(y - h/2) / (h/2)``
      (PYSKL ``PreNormalize2D``) with ``image_size`` = (h, w), or each clip's own size when
      None; undetected keypoints (x = y = 0 and score 0) stay 0;
    - ``centre="first_frame"``: x, y, z minus joint ``centre_joint`` (index ``centre_index``)
      of person 1 in its first present frame; absent person frames stay zero;
    - ``second_actor="duplicate"``: an empty second person becomes a copy of the first.

    ``note`` tells in words what the import did beyond these (denoising, trimming), which
    cannot be redone on a bare array. ``known=False`` (:data:`UNKNOWN`): the steps are not
    known (``note`` may say why), so none can be applied.
    """

    centre: str = "none"
    centre_joint: str | None = None
    centre_index: int | None = None
    normalise_2d: str = "none"
    image_size: tuple[float, float] | None = None
    persons: int | None = None
    person_order: str = "as_given"
    second_actor: str = "zeros"
    note: str = ""
    known: bool = True

    def __post_init__(self) -> None:
        for name, allowed in (("centre", CENTRES), ("normalise_2d", NORMALISATIONS), ("person_order", PERSON_ORDERS),
                              ("second_actor", SECOND_ACTORS)):
            if getattr(self, name) not in allowed:
                raise PreprocessingError(f"preprocessing {name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.centre == "first_frame" and (
            not isinstance(self.centre_joint, str) or not isinstance(self.centre_index, int) or self.centre_index < 0
        ):
            raise PreprocessingError("first-frame centring needs centre_joint (a joint name) and centre_index (>= 0)")
        if self.image_size is not None:
            try:
                size = tuple(float(v) for v in self.image_size)
            except (TypeError, ValueError):
                size = ()
            if len(size) != 2 or not all(0 < v < float("inf") for v in size):
                raise PreprocessingError(f"preprocessing image_size must be (height, width) > 0, got {self.image_size!r}")
            object.__setattr__(self, "image_size", size)
        if self.persons is not None and (not isinstance(self.persons, int) or self.persons < 1):
            raise PreprocessingError(f"preprocessing persons must be at least 1, got {self.persons!r}")

    @classmethod
    def centred(cls, layout: SkeletonLayout, **steps: Any) -> Preprocessing:
        """First-frame centring on ``layout``'s centre joint, plus the other ``steps`` (fields)."""
        return cls(centre="first_frame", centre_joint=layout.joint_names[layout.center], centre_index=layout.center, **steps)

    # -- JSON -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["image_size"] = list(self.image_size) if self.image_size is not None else None
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any] | None) -> Preprocessing:
        """The record :meth:`to_dict` wrote; None (a manifest or checkpoint older than the
        record) is :data:`UNKNOWN`."""
        if record is None:
            return UNKNOWN
        if not isinstance(record, Mapping):
            raise PreprocessingError(f"a preprocessing record is a mapping, got {type(record).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(record) - fields)
        if unknown:
            raise PreprocessingError(f"unknown preprocessing key(s) {unknown}; expected some of {sorted(fields)}")
        return cls(**record)

    # -- words ------------------------------------------------------------------------
    def describe(self) -> str:
        """One line for ``data info`` and messages."""
        if not self.known:
            return f"unknown ({self.note or 'not recorded: the dataset was prepared before skelmae recorded it'})"
        steps = []
        if self.normalise_2d == "image_size":
            size = f"{self.image_size[1]:g}x{self.image_size[0]:g} px" if self.image_size else "each clip's own size"
            steps.append(f"2D x, y scaled to [-1, 1] by the image size ({size})")
        if self.centre == "first_frame":
            steps.append(f"centred on {self.centre_joint} of person 1 in its first present frame")
        if not steps:
            steps.append("coordinates as read")
        if self.persons is not None:
            persons = f"{self.persons} person{'s' if self.persons > 1 else ''} ({_ORDER_WORDS[self.person_order]})"
            if self.second_actor == "duplicate" and self.persons > 1:
                persons += ", one-person clips get a copy of the first as the second"
            steps.append(persons)
        if self.note:
            steps.append(self.note)
        return "; ".join(steps)

    # -- the steps --------------------------------------------------------------------
    def apply(self, sequence: np.ndarray) -> np.ndarray:
        """A raw (T, M, V, C) clip -> float32 (T, persons, V, C) as the dataset stores it.

        Applying it to what it returned changes nothing: centring, the person rules and
        the second actor are idempotent, and image normalisation is skipped for a clip
        whose x, y all lie within :data:`NORMALISED_LIMIT` (already normalised; fractions
        of the image: one with a negative value), so a stored clip passes unchanged. Steps that
        need what a bare array lacks (body IDs, the frames of a video) are not redone; an
        :data:`UNKNOWN` record changes nothing.
        """
        seq = np.array(sequence, dtype=np.float32)
        if seq.ndim != 4:
            raise PreprocessingError(f"a clip to preprocess is (T, M, V, C), got shape {seq.shape}")
        if not self.known:
            return seq
        if self.persons is not None:
            seq = self._keep_persons(seq)
        if self.normalise_2d == "image_size" and not self._normalised(seq):
            seq = self._normalise(seq, self.image_size)
        if self.centre == "first_frame":
            seq = self._centre(seq)
        if self.second_actor == "duplicate" and seq.shape[1] > 1 and not seq[:, 1].any():
            seq[:, 1] = seq[:, 0]
        return seq

    def _keep_persons(self, seq: np.ndarray) -> np.ndarray:
        if seq.shape[1] > self.persons:
            if self.person_order == "motion":
                motion = np.array([_motion(seq[:, m]) for m in range(seq.shape[1])])
                return seq[:, np.argsort(-motion, kind="stable")[: self.persons]]
            return seq[:, : self.persons]
        padded = np.zeros((len(seq), self.persons, *seq.shape[2:]), dtype=np.float32)
        padded[:, : seq.shape[1]] = seq
        return padded

    def _normalised(self, seq: np.ndarray) -> bool:
        """Whether x, y are already in the stored range. Pixels exceed it; fractions of the image
        (an image size of 1 x 1, MediaPipe's) lie in it too, but are never negative."""
        xy = seq[..., :2]
        if self.image_size is not None and max(self.image_size) <= 1:
            return bool((xy < 0).any())
        return bool((np.abs(xy) <= NORMALISED_LIMIT).all())

    def _normalise(self, seq: np.ndarray, image_size: tuple[float, float] | None) -> np.ndarray:
        if image_size is None:
            raise PreprocessingError(
                "the dataset scaled each clip by its own image size, which a bare array does not carry: "
                "normalise x, y to [-1, 1] first, or predict on the original pose file"
            )
        height, width = image_size
        half = np.array([width / 2, height / 2], dtype=np.float32)
        xy = seq[..., :2]
        undetected = (xy == 0).all(axis=-1) & (seq[..., 2] == 0 if seq.shape[-1] > 2 else False)
        seq[..., :2] = (xy - half) / half
        seq[undetected, :2] = 0
        return seq

    def _centre(self, seq: np.ndarray) -> np.ndarray:
        from skelmae.data.formats.common import centre_on_first_frame  # the formats package imports this module

        if self.centre_index >= seq.shape[2]:
            raise PreprocessingError(
                f"centre joint {self.centre_joint} (index {self.centre_index}) is not among {seq.shape[2]} joints"
            )
        centred = centre_on_first_frame(seq, self.centre_index)
        return seq if centred is None else centred


def _motion(person: np.ndarray) -> float:
    """The NTU actor measure: the summed per-axis variance of the joints over the person's present frames."""
    present = person[np.any(person != 0, axis=(1, 2))]
    return float(np.var(present[..., :3].reshape(-1, min(3, person.shape[-1])), axis=0).sum()) if len(present) else 0.0


UNKNOWN = Preprocessing(known=False)
