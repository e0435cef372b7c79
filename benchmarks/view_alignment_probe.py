"""How much of NW-UCLA's cross-view gap ``data.align_view`` removes, without any training.

    python benchmarks/view_alignment_probe.py [data/nw_ucla]

Fits a logistic regression on every training clip resampled to 16 frames (standardised
coordinates) and scores it on the unseen test view, once on the stored clips and once on
the same clips after ``AlignView``. A cheap check of the preprocessing, independent of
any network.
"""

from __future__ import annotations

import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from skelmae.data.storage import SkeletonStore
from skelmae.data.transforms import AlignView, Compose, ValidCropResize


def features(store: SkeletonStore, indices: np.ndarray, transform: Compose) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([transform(np.transpose(store.sequence(i), (3, 0, 2, 1)), rng).ravel() for i in indices])


def main(root: str) -> None:
    store = SkeletonStore(root)
    labels = store.labels
    train, test = store.split("xview_train"), store.split("xview_test")
    resample = ValidCropResize(16, (1.0,))
    for name, transform in (("stored", Compose([resample])), ("align_view", Compose([AlignView(store.layout), resample]))):
        x_train, x_test = features(store, train, transform), features(store, test, transform)
        scaler = StandardScaler().fit(x_train)
        model = LogisticRegression(max_iter=2000, C=0.1).fit(scaler.transform(x_train), labels[train])
        print(f"{name:>10}: train {100 * model.score(scaler.transform(x_train), labels[train]):.1f} %, "
              f"unseen view {100 * model.score(scaler.transform(x_test), labels[test]):.1f} %")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/nw_ucla")
