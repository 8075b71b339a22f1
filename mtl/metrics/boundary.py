"""The BSDS boundary F-measure (odsF, oisF) of edge maps, as SEISM computes it for the dense multi-task benchmarks.

Per image and per threshold t of ``THRESHOLDS`` (0.01, 0.02, …, 0.99: the 99 parameters that Multi-Task-Learning-
PyTorch's ``evaluation/eval_edge.py`` hands to SEISM, and the BSDS default ``nthresh = 99``):

1. the prediction is its 8-bit code v (MTL-PyTorch saves ``255·sigmoid`` as a PNG) and is an edge where
   v/255 ≥ t (SEISM's ``read_one_png``); pixels whose ground truth is ignored (255) are dropped;
2. the binary map and the ground-truth boundary map are thinned to one-pixel lines (MATLAB's
   ``bwmorph(…, 'thin', Inf)``, which ``edgesEvalImg`` applies to both);
3. predicted and ground-truth pixels are matched one to one, a pair allowed when their Euclidean distance is at
   most ``tolerance`` × the image diagonal (BSDS ``correspondPixels``);
4. the image contributes four counts at t: matched ground-truth pixels (cntR), ground-truth pixels (sumR),
   matched predicted pixels (cntP), predicted pixels (sumP). With one ground truth per image cntR = cntP.

Aggregation (SEISM ``gather_measure``, ``general_ods``, ``general_ois``): R = cntR/sumR, P = cntP/sumP,
F = 2PR/(P + R), each 0 when its denominator is 0.

- **ODS** (optimal dataset scale): the counts summed over all images at each t; odsF is the best F over t.
- **OIS** (optimal image scale): each image's own best t (highest per-image F, the lowest t on ties, as MATLAB's
  ``max``); those counts summed over images; oisF is the F of the sums.

Unlike the BSDS benchmark's ``collect_eval_bdry``, SEISM does not interpolate precision and recall between
thresholds; neither does this module.

Matching: correspondPixels solves a min-cost assignment in which an unmatched pixel costs 100 × the tolerance and a
matched pair its distance. A match saves two outlier costs (200 × tolerance), far more than any pair distance
(≤ tolerance), so its solutions have the largest possible number of matches: the counts are those of a maximum
bipartite matching over the pairs within the tolerance, computed exactly without costs (``match_count``).
tests/test_edges.py compares the two formulations on random maps.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from mtl.data.thinning import thin

THRESHOLDS = np.arange(1, 100) / 100  # 0.01 … 0.99 as float64, the values MATLAB parses from "%.2f"
IGNORE = 255
COUNTS = ("cnt_r", "sum_r", "cnt_p", "sum_p")
GREEDY_ROUNDS = 3  # rounds of mutual-nearest pairing that seed the exact matching (any number gives the same count)


def _first_of_each(keys: np.ndarray, size: int) -> np.ndarray:
    """Mask of the first position of each key value in ``keys`` (values in 0..size−1)."""
    first = np.full(size, keys.size)
    np.minimum.at(first, keys, np.arange(keys.size))
    mask = np.zeros(keys.size, dtype=bool)
    mask[first[first < keys.size]] = True
    return mask


def _greedy_pairs(i: np.ndarray, j: np.ndarray, dist: np.ndarray, n_pred: int, n_truth: int) -> tuple[np.ndarray, np.ndarray]:
    """A matching to start from: pairs whose two pixels are each other's nearest free partner, a few rounds."""
    order = np.argsort(np.rint(dist * dist).astype(np.int64), kind="stable")  # squared pixel distances are integers
    i, j = i[order], j[order]
    mate_pred, mate_truth = np.full(n_pred, -1), np.full(n_truth, -1)
    for _ in range(GREEDY_ROUNDS):
        free = (mate_pred[i] < 0) & (mate_truth[j] < 0)
        fi, fj = i[free], j[free]
        if fi.size == 0:
            break
        mutual = _first_of_each(fi, n_pred) & _first_of_each(fj, n_truth)
        mate_pred[fi[mutual]], mate_truth[fj[mutual]] = fj[mutual], fi[mutual]
    return mate_pred, mate_truth


def match_count(pred: np.ndarray, truth: np.ndarray, max_dist: float) -> int:
    """How many pixels of the boolean maps ``pred`` and ``truth`` can be paired one to one, each pair no farther
    apart than ``max_dist`` pixels (Euclidean): the size of a maximum bipartite matching.

    SciPy's ``maximum_bipartite_matching`` (Hopcroft–Karp from an empty matching) takes ~10 s on a 425×560 map at a
    low threshold: augmenting paths along boundary lines are long. Starting from a greedy matching of nearest
    pairs and adding the augmenting paths as a maximum flow (SciPy's Dinic) on the residual network gives the
    same count in a fraction of that."""
    from scipy.sparse.csgraph import maximum_flow

    p, g = np.argwhere(pred), np.argwhere(truth)
    if len(p) == 0 or len(g) == 0:
        return 0
    pairs = cKDTree(p).sparse_distance_matrix(cKDTree(g), max_dist, output_type="ndarray")
    if len(pairs) == 0:
        return 0
    i, j = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64)
    mate_pred, mate_truth = _greedy_pairs(i, j, pairs["v"], len(p), len(g))
    # Residual network of the greedy matching: source → free predicted pixel → (unmatched pair) → ground-truth
    # pixel → (matched pair, backwards) → predicted pixel …, free ground-truth pixel → sink. Its maximum flow is
    # the number of matches the greedy start lacks.
    n_p, n_g = len(p), len(g)
    source, sink = n_p + n_g, n_p + n_g + 1
    in_matching = mate_pred[i] == j
    free_pred, free_truth = np.flatnonzero(mate_pred < 0), np.flatnonzero(mate_truth < 0)
    tails = np.concatenate([np.full(free_pred.size, source), np.where(in_matching, n_p + j, i), n_p + free_truth])
    heads = np.concatenate([free_pred, np.where(in_matching, i, n_p + j), np.full(free_truth.size, sink)])
    network = csr_matrix((np.ones(tails.size, dtype=np.int32), (tails, heads)), shape=(n_p + n_g + 2,) * 2)
    return int((mate_pred >= 0).sum() + maximum_flow(network, source, sink, method="dinic").flow_value)


@cache
def _minimum_codes() -> np.ndarray:
    """For each threshold, the smallest 8-bit code v with v/255 ≥ t (the comparison evaluated as in MATLAB)."""
    codes = np.arange(256) / 255.0
    return np.array([int(np.argmax(codes >= t)) for t in THRESHOLDS])


def image_counts(codes: np.ndarray, target: np.ndarray, tolerance: float) -> np.ndarray:
    """The 4 × K counts (cntR, sumR, cntP, sumP per threshold) of one image: ``codes`` H×W uint8 prediction codes
    (255·probability), ``target`` H×W uint8 (1 boundary, 0 not, 255 ignored)."""
    if codes.shape != target.shape:
        raise ValueError(f"edge prediction {codes.shape} and ground truth {target.shape} differ in size")
    height, width = target.shape
    max_dist = tolerance * float(np.hypot(height, width))
    valid = target != IGNORE
    truth = thin(target == 1)
    sum_r = int(truth.sum())
    counts = np.zeros((4, len(THRESHOLDS)), dtype=np.int64)
    present = np.bincount(codes[valid].ravel(), minlength=256)
    above = np.cumsum(present[::-1])[::-1]  # pixels with a code ≥ v, for each v
    previous = None
    for k, minimum in enumerate(_minimum_codes()):
        # A threshold that selects the same pixels as the previous one has its counts.
        if previous is not None and above[minimum] == above[previous[0]]:
            counts[:, k] = previous[1]
            continue
        pred = thin((codes >= minimum) & valid)
        matched = match_count(pred, truth, max_dist)
        counts[:, k] = (matched, sum_r, matched, int(pred.sum()))
        previous = (minimum, counts[:, k].copy())
    return counts


def f_measure(cnt_r: np.ndarray, sum_r: np.ndarray, cnt_p: np.ndarray, sum_p: np.ndarray) -> tuple[np.ndarray, ...]:
    """(F, precision, recall) from the counts, element-wise; a ratio with a zero denominator is 0 (SEISM)."""
    recall = np.divide(cnt_r, sum_r, out=np.zeros(np.shape(cnt_r)), where=np.asarray(sum_r) > 0)
    precision = np.divide(cnt_p, sum_p, out=np.zeros(np.shape(cnt_p)), where=np.asarray(sum_p) > 0)
    total = precision + recall
    f = np.divide(2 * precision * recall, total, out=np.zeros(np.shape(total)), where=total > 0)
    return f, precision, recall


def boundary_scores(counts: np.ndarray) -> dict[str, float]:
    """odsF, oisF (percent), the ODS threshold and its precision and recall (percent) from N × 4 × K counts."""
    if len(counts) == 0:
        return {"ods_f": 0.0, "ois_f": 0.0, "ods_threshold": float(THRESHOLDS[0]), "ods_precision": 0.0, "ods_recall": 0.0}
    counts = np.asarray(counts, dtype=np.float64)
    f, precision, recall = f_measure(*counts.sum(0))
    best = int(np.argmax(f))
    per_image_best = np.argmax(f_measure(*counts.transpose(1, 0, 2))[0], axis=1)
    ois = counts[np.arange(len(counts)), :, per_image_best].sum(0)
    return {
        "ods_f": 100 * float(f[best]),
        "ois_f": 100 * float(f_measure(*ois)[0]),
        "ods_threshold": float(THRESHOLDS[best]),
        "ods_precision": 100 * float(precision[best]),
        "ods_recall": 100 * float(recall[best]),
    }


class BoundaryF(Metric):
    """odsF and oisF over everything seen since the last reset (see the module's docstring).

    ``update(pred, target)``: ``pred`` B×H×W edge probabilities in [0, 1] (rounded to the nearest 8-bit code, the
    precision of the saved maps the benchmark evaluates), ``target`` B×H×W (1 boundary, 0 not, 255 ignored).
    ``tolerance``: the maximum matching distance as a fraction of the image diagonal. The state is each image's
    counts (N × 4 × K), concatenated over DDP processes: OIS needs them per image. An image without any
    evaluated pixel (all ignored) is left out, as MTL-PyTorch saves no prediction for it.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, tolerance: float, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 < tolerance < 1:
            raise ValueError(f"edge matching tolerance must be a fraction of the image diagonal in (0, 1), got {tolerance}")
        self.tolerance = tolerance
        self.add_state("counts", default=[], dist_reduce_fx="cat")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"edge prediction {tuple(pred.shape)} and ground truth {tuple(target.shape)} differ in size")
        codes = (pred.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        targets = target.detach().to(torch.uint8).cpu().numpy()
        for image_codes, image_target in zip(codes, targets):
            if (image_target == IGNORE).all():
                continue
            counts = image_counts(image_codes, image_target, self.tolerance)
            self.counts.append(torch.from_numpy(counts)[None].to(self.device))

    def compute(self) -> dict[str, torch.Tensor]:
        empty = isinstance(self.counts, list) and not self.counts
        counts = np.zeros((0, 4, len(THRESHOLDS))) if empty else dim_zero_cat(self.counts).cpu().numpy()
        return {name: torch.tensor(value, dtype=torch.float64) for name, value in boundary_scores(counts).items()}
