"""Dataset layouts as plug-ins: one module per layout, registered with ``@register_dataset`` (see ``mtl.datasets.base``)."""

from mtl.datasets.base import DATASETS, Codec, DatasetInfo, DatasetLayout, SplitDataset, build_dataset, register_dataset

__all__ = ["DATASETS", "Codec", "DatasetInfo", "DatasetLayout", "SplitDataset", "build_dataset", "register_dataset"]
