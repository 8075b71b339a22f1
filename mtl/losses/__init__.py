"""Training losses as functions of predictions and targets; tasks choose and combine them."""

from mtl.losses.depth import DEPTH_LOSSES, berhu_loss, get_depth_loss, l1_loss, l2_loss, silog_loss
from mtl.losses.semseg import semseg_loss

__all__ = ["DEPTH_LOSSES", "berhu_loss", "get_depth_loss", "l1_loss", "l2_loss", "semseg_loss", "silog_loss"]
