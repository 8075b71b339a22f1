"""Evaluation protocols: the conventions of the code behind published tables, each named and recorded.

The same predictions give different numbers under the evaluation code of the course, of MTAN (which Nash-MTL and
FAMO copied) and of LibMTL; papers print whichever their code computed. A protocol names one set of choices:

========================  ===============================  ===============================  ==========================
choice                    ``course`` (MiniScapes grader)   ``mtan`` (MTAN, Nash-MTL, FAMO)  ``libmtl`` (LibMTL)
========================  ===============================  ===============================  ==========================
depth Abs/Rel Err         per image, then mean of images   pooled over the valid pixels of  pooled over all valid
                                                           each evaluation batch, then the  pixels of the split
                                                           mean of the batches
depth clamp               ground truth and prediction      none                             none
                          ≥ 0.01 (in every metric)
class absent from ground  IoU 0, counted in the mean       left out of the mean             left out of the mean
truth and prediction
normals validity          stored vector finite and not     x + y + z ≠ 0, vector used as    x + y + z ≠ 0, vector used
                          zero, re-normalised              stored                           as stored
normals angles            pooled over the split            per evaluation batch, then the   pooled over the split
                                                           mean of the batches
========================  ===============================  ===============================  ==========================

``mtl_pytorch`` follows the evaluation code of ASTMT, MTI-Net and MTL-PyTorch (SimonVandenhende/Multi-Task-Learning-
PyTorch ``evaluation/eval_{semseg,depth,normals}.py``, which score the prediction files ``save_model_predictions``
writes), the tables of the NYUD-v2 and PASCAL-Context multi-task benchmarks: confusion counts over the split with an
absent class scored 0 and counted (their ``tp / max(tp + fp + fn, 1e-8)``); depth RMSE and log-RMSE pooled over
every valid pixel of the split (valid: ground truth ≠ 0), a prediction ≤ 0 taken as 1e-9 (here: both depths
clamped to ≥ 1e-9, which differs only for a depth under a nanometre); normals valid where the ground truth is not
the zero vector, both vectors normalised, angles pooled over the split, the prediction first quantised to the
8-bit codes ⌊255·(n + 1)/2⌋ of their PNG files (``normals_8bit``). Abs and Rel Err, which they do not compute, are
pooled over the split. ASTMT's own code (facebookresearch/astmt ``fblib/evaluation``) is the same for semseg and
normals, not for depth: it averages per-image RMSEs and counts pixels without ground truth (its mask is taken
after replacing 0 by 1e-9), so its depth figures are not reproduced; MTI-Net's and MTL-PyTorch's are.

Other depth metrics (RMSE, δ, SI-logRMSE, …) are per image under every protocol but ``mtl_pytorch`` (RMSE and
log-RMSE pooled over the split there, ``depth_rmse_pooled``; no reference computes the others); the clamp applies to them as to the rest. Where the references compute something that is not a number
(a mean over zero pixels, ``torch.mean`` over a NaN class IoU), mtl leaves the empty batch or class out instead:
the two agree whenever the reference's figure is a number. Pooled over a split, the median angle comes from a
histogram of 0.01° bins (an exact median would keep every angle of the split in memory): it lies within 0.01° of
the lower of the two middle angles, where np.median takes their mean — on a real split the two are a hair apart
(−0.003° on the NYUv2 fixture the references were compared on). Per batch, the median is exact.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvalProtocol:
    name: str
    averaging: str  # "image" (course), "batch" (MTAN: pooled per evaluation batch, then mean of batches), "split"
    depth_min: float | None  # both depths clamped to at least this in every depth metric; None: no clamp
    absent_classes: str  # "zero": an IoU of 0 in the mean; "excluded": left out of the mean
    normals_as_stored: bool  # stored vectors as they are, invalid where x+y+z = 0 (the references' test)
    source: str  # whose evaluation code this is, for tables and reports
    depth_rmse_pooled: bool = False  # depth RMSE and log-RMSE pooled over every valid pixel of the split
    normals_8bit: bool = False  # predicted normals scored as the 8-bit codes ⌊255·(n + 1)/2⌋ of the reference's PNGs

    @property
    def normals_per_batch(self) -> bool:
        return self.averaging == "batch"


PROTOCOLS: dict[str, EvalProtocol] = {
    "course": EvalProtocol("course", "image", 0.01, "zero", False, "the DLAD course (MiniScapes grader)"),
    "mtan": EvalProtocol("mtan", "batch", None, "excluded", True, "MTAN / Nash-MTL / FAMO (lorenmt/mtan utils.py)"),
    "libmtl": EvalProtocol("libmtl", "split", None, "excluded", True, "LibMTL (examples/nyu/utils.py)"),
    "mtl_pytorch": EvalProtocol(
        "mtl_pytorch", "split", 1e-9, "zero", False, "MTI-Net / MTL-PyTorch (evaluation/eval_*.py), ASTMT",
        depth_rmse_pooled=True, normals_8bit=True,
    ),
}


def protocol(name: str) -> EvalProtocol:
    """The protocol of this name; ValueError listing the known ones."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown evaluation protocol {name!r}; choose among {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
