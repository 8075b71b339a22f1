"""Cityscapes as downloaded (fine annotations, SPEC §9): semantic segmentation (19 trainIds) and depth in metres.

Files, each ``<kind>/<split>/<city>/<city>_<seq>_<frame>_<suffix>``:

- ``leftImg8bit/…_leftImg8bit.png``: 8-bit RGB, 2048×1024;
- ``gtFine/…_gtFine_labelIds.png``: 8-bit labelIds, mapped to the 19 trainIds (everything else → 255 = ignore)
  through the official table ``cityscapesscripts.helpers.labels``; a value the table does not have is an error.
  The other gtFine files (``_color.png``, ``_instanceIds.png``, ``_polygons.json``, ``_labelTrainIds.png``)
  may be there and are not read;
- ``disparity/…_disparity.png``: 16-bit; a pixel p > 1 has disparity d = (p − 1)/256 pixels; p = 0 is invalid,
  and so is p = 1 (d = 0: infinitely far);
- ``camera/…_camera.json``: ``extrinsic.baseline`` (m) and ``intrinsic.fx`` (pixels): depth z = baseline·fx/d.

Splits train and val with ground truth; test (no public labels) is read for prediction only. A sample's name is
its ``<city>_<seq>_<frame>``; samples are ordered by city, then name. Ground truth of a task is there when its
folder (``gtFine/<split>``, ``disparity/<split>``) is: many copies have no disparity. Missing files, a disparity
PNG that is not 16-bit, labelIds outside the table, an unreadable camera file: each a ``DataFormatError``
naming the file (in `mtl data check` first).

``--dataset_resize H,W`` (or a scale such as ``0.5``) reads every sample at that size: RGB bilinear
(antialiased), labels and depth by nearest neighbour (depth is computed at full resolution first, so no value
is interpolated, across invalid pixels or otherwise). Predictions are written back at the files' size
(nearest), which is what the official evaluator needs; the metrics printed during training are at the reduced
size.

Predictions: ``<name>_labelIds.png`` (trainIds → labelIds, 8-bit, what ``evalPixelLevelSemanticLabeling``
scores: point ``CITYSCAPES_RESULTS`` at the folder) and ``<name>_depth.npy`` (float32 metres).

`mtl data synth --layout cityscapes` writes the generated world in this layout (``write_generated``):
``leftImg8bit/<split>/synth/synth_000000_<i:06d>_leftImg8bit.png`` (RGB PNG); for train and val
``gtFine/…_gtFine_labelIds.png`` (trainIds → labelIds through the official table: each trainId has one labelId;
the ego car's bonnet, 255, is labelId 1 "ego vehicle"), ``gtFine/…_gtFine_instanceIds.png`` (16-bit, equal to
the labelIds: no instances, which is what the official evaluator reads next to the labels),
``disparity/…_disparity.png`` (16-bit, p = round(256·d) + 1 with d = baseline·fx/z pixels, 0 where the depth is
invalid) and ``camera/…_camera.json`` with the Cityscapes stereo baseline 0.209313 m and the sample's own focal
length (fx = fy = W / (2·tan(hfov/2)), principal point at the centre). The test split gets leftImg8bit only,
like the real one (no public labels).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from mtl.data import formats
from mtl.data.check import SIXTEEN_BIT_MODES, CheckResult, check_files, content_problem, image_header, size_problems
from mtl.data.classes import CLASS_COLORS, CLASS_NAMES, IGNORE_INDEX
from mtl.data.formats import DataFormatError, atomic_write, open_image
from mtl.datasets.base import Codec, DatasetInfo, DatasetLayout, register_dataset
from mtl.tasks.depth import DepthInfo
from mtl.tasks.semseg import SemsegInfo

if TYPE_CHECKING:
    from mtl.data.synth.sample import Sample

SPLITS = ("train", "val", "test")
LABELLED = ("train", "val")
FOLDER = {"rgb": "leftImg8bit", "semseg": "gtFine", "disparity": "disparity", "camera": "camera"}
SUFFIX = {
    "rgb": "_leftImg8bit.png",
    "semseg": "_gtFine_labelIds.png",
    "disparity": "_disparity.png",
    "camera": "_camera.json",
}
OTHER_GTFINE = ("_gtFine_color.png", "_gtFine_instanceIds.png", "_gtFine_polygons.json", "_gtFine_labelTrainIds.png")
NAME = re.compile(r"([^_/]+)_([0-9]+)_([0-9]+)")  # <city>_<seq>_<frame>
IMAGE_NAME_HINT = "not a Cityscapes image name (expected <city>_<seq>_<frame>_leftImg8bit.png inside its <city> folder)"
CITYSCAPES_BASELINE_M = 0.209313  # the Cityscapes stereo rig's baseline
CITYSCAPES_FX_2048 = 2262.52  # its focal length in pixels at the full 2048-pixel width
SYNTH_CITY = "synth"  # the city folder of generated samples


# ---------------------------------------------------------------------------------------- the label table
@cache
def label_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From ``cityscapesscripts.helpers.labels``: (labelId → trainId, 256 uint8 with 255 for ignored labels;
    which labelIds the table has, 256 bool; trainId → labelId, 256 uint8 with 0 "unlabeled" for 255)."""
    from cityscapesscripts.helpers.labels import labels

    train_of = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    known = np.zeros(256, dtype=bool)
    label_of = np.zeros(256, dtype=np.uint8)
    for label in labels:
        if label.id < 0:  # "license plate": not a value of the label images
            continue
        known[label.id] = True
        if 0 <= label.trainId < IGNORE_INDEX and not label.ignoreInEval:
            train_of[label.id] = label.trainId
            label_of[label.trainId] = label.id
    return train_of, known, label_of


def train_ids_from_label_ids(path: Path, label_ids: np.ndarray) -> np.ndarray:
    train_of, known, _ = label_table()
    unknown = ~known[label_ids]
    if unknown.any():
        values = sorted(np.unique(label_ids[unknown]).tolist())
        raise DataFormatError(
            f"{path}: labelIds {values[:5]} are not in the Cityscapes label table (cityscapesscripts.helpers.labels)"
        )
    return train_of[label_ids]


def read_label_ids(path: Path) -> np.ndarray:
    """H×W uint8 trainIds (255 = ignore) from an 8-bit labelIds PNG."""
    image = open_image(path)
    if image.mode not in ("L", "P"):
        raise DataFormatError(f"{path}: labelIds image has mode {image.mode!r}, expected 8-bit 'L'")
    return train_ids_from_label_ids(path, np.array(image, dtype=np.uint8))


def write_label_ids(path: Path, train_ids: np.ndarray) -> None:
    """trainIds (0..18) → labelIds PNG (mode L); 255 → 0 "unlabeled"."""
    _, _, label_of = label_table()
    Image.fromarray(label_of[np.asarray(train_ids, dtype=np.uint8)]).save(path)


@cache
def generated_label_ids() -> np.ndarray:
    """256-entry uint8 table trainId → labelId for generated samples (255, the ego car's bonnet → "ego vehicle")."""
    from cityscapesscripts.helpers.labels import labels, name2label

    table = np.full(256, name2label["ego vehicle"].id, dtype=np.uint8)
    for label in labels:
        if 0 <= label.trainId < 255 and not label.ignoreInEval:
            table[label.trainId] = label.id
    return table


# ------------------------------------------------------------------------------------- disparity → depth
def read_disparity_codes(path: Path) -> np.ndarray:
    """The 16-bit codes p of a disparity PNG, as uint16."""
    image = open_image(path)
    if image.mode not in SIXTEEN_BIT_MODES:
        bits = "8-bit" if image.mode in ("L", "P", "1") else "not 16-bit"
        raise DataFormatError(f"{path}: disparity PNG has mode {image.mode!r} ({bits}), expected a 16-bit grayscale PNG")
    codes = np.array(image)
    if codes.dtype.kind not in "iu" or codes.min(initial=0) < 0 or codes.max(initial=0) > 65535:
        raise DataFormatError(f"{path}: disparity values outside 0..65535")
    return codes.astype(np.uint16)


def read_camera(path: Path) -> tuple[float, float]:
    """(baseline in metres, fx in pixels) of a camera.json."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: missing file")
    try:
        camera = json.loads(path.read_text(encoding="utf-8"))
        baseline, fx = float(camera["extrinsic"]["baseline"]), float(camera["intrinsic"]["fx"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, KeyError):
            reason = f"no {exc}"
        else:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataFormatError(
            f"{path}: not a Cityscapes camera file with extrinsic.baseline and intrinsic.fx ({reason})"
        ) from exc
    if not (math.isfinite(baseline) and baseline > 0 and math.isfinite(fx) and fx > 0):
        raise DataFormatError(f"{path}: baseline {baseline} and fx {fx} must be positive numbers")
    return baseline, fx


def depth_from_disparity(codes: np.ndarray, baseline: float, fx: float) -> np.ndarray:
    """z = baseline·fx/d with d = (p − 1)/256 for p > 1; NaN for p ∈ {0, 1}. float64 arithmetic, float32 result."""
    p = codes.astype(np.float64)
    d = (p - 1.0) / 256.0
    with np.errstate(divide="ignore"):
        z = baseline * fx / d
    return np.where(p > 1, z, np.nan).astype(np.float32)


def encode_disparity(depth_m: np.ndarray, baseline: float, fx: float) -> np.ndarray:
    """Metres (NaN = invalid) → 16-bit Cityscapes disparity codes p = round(256·baseline·fx/z) + 1, 0 = invalid."""
    with np.errstate(divide="ignore", invalid="ignore"):
        disparity = baseline * fx / depth_m.astype(np.float64)
    codes = np.round(disparity * 256.0) + 1.0
    codes = np.where(np.isfinite(codes), np.clip(codes, 0.0, 65535.0), 0.0)
    return codes.astype(np.uint16)


def sample_prefix(index: int) -> str:
    """The Cityscapes name ``<city>_<seq>_<frame>`` of generated sample ``index``."""
    return f"{SYNTH_CITY}_000000_{index:06d}"


# ----------------------------------------------------------------------------------------------- resizing
def resize_value(value: str) -> tuple[int, int] | float:
    """``--dataset_resize``: 'H,W' in pixels, or one scale factor in (0, 1] applied to both sides."""
    text = str(value).strip("[]() ")
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) == 2:
            height, width = int(parts[0]), int(parts[1])
            if height > 0 and width > 0:
                return (height, width)
        elif len(parts) == 1:
            scale = float(parts[0])
            if math.isfinite(scale) and 0 < scale <= 1:
                return scale
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected H,W (positive pixels) or a scale in (0, 1] such as 0.5, got {value!r}")


def target_size(resize: tuple[int, int] | float | None, height: int, width: int) -> tuple[int, int]:
    if resize is None:
        return height, width
    if isinstance(resize, tuple):
        return resize
    return max(1, round(height * resize)), max(1, round(width * resize))


def nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resampling (pixel centres) of the first two axes: no value is ever interpolated."""
    rows = np.minimum(((np.arange(height) + 0.5) * array.shape[0] / height).astype(np.int64), array.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * array.shape[1] / width).astype(np.int64), array.shape[1] - 1)
    return array[rows][:, cols]


def _read_depth_prediction(path: Path) -> np.ndarray:
    array = np.load(path, allow_pickle=False)
    return np.asarray(array, dtype=np.float32)


def _write_depth_prediction(path: Path, depth: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(depth, dtype=np.float32))


CODECS = {
    "semseg": Codec("_labelIds.png", read_label_ids, write_label_ids),
    "depth": Codec("_depth.npy", _read_depth_prediction, _write_depth_prediction),
}
GROUND_TRUTH = {"semseg": "semseg", "depth": "disparity"}  # task → the kind of file its ground truth is read from


@register_dataset("cityscapes")
class CityscapesLayout(DatasetLayout):
    info = DatasetInfo(
        name="cityscapes",
        stored_tasks=("semseg", "depth"),
        default_tasks=("semseg", "depth"),
        task_info={
            # the 19 trainIds of the official table (tests compare them with it)
            "semseg": SemsegInfo(CLASS_NAMES, CLASS_COLORS, IGNORE_INDEX),
            # stereo depth: ≈ 3.7 m at the largest disparity; far pixels are noisy
            "depth": DepthInfo(value_range=(1.0, 1000.0)),
        },
    )
    codecs = CODECS
    synth_size = (512, 256)

    def __init__(self, root: str | Path, resize: tuple[int, int] | float | None = None) -> None:
        super().__init__(root)
        self.resize = resize
        self._samples: dict[str, list[tuple[str, str]]] = {}

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--dataset_resize", type=resize_value, default=None, metavar="H,W|SCALE",
            help="cityscapes: read every sample at H,W pixels or scaled (e.g. 0.5); labels and depth by nearest "
            "neighbour; predictions are written back at the files' size (default: full resolution)",
        )

    @classmethod
    def from_flags(cls, flags: argparse.Namespace) -> CityscapesLayout:
        return cls(flags.dataset_root, getattr(flags, "dataset_resize", None))

    # ----------------------------------------------------------------------------------------- files
    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if (self.root / FOLDER["rgb"] / s).is_dir())

    def samples(self, split: str) -> list[tuple[str, str]]:
        """(city, name) of every image of a split, by city then name."""
        if split not in self._samples:
            folder = self.root / FOLDER["rgb"] / split
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"{folder}: split folder not found (expected <root>/leftImg8bit/{split}/<city>/"
                    "<city>_<seq>_<frame>_leftImg8bit.png)"
                )
            found = []
            for city in sorted(p for p in folder.iterdir() if p.is_dir()):
                for path in sorted(city.glob(f"*{SUFFIX['rgb']}")):
                    name = path.name[: -len(SUFFIX["rgb"])]
                    match = NAME.fullmatch(name)
                    if match and match.group(1) == city.name:
                        found.append((city.name, name))
            self._samples[split] = found
        return self._samples[split]

    def split_size(self, split: str) -> int:
        return len(self.samples(split))

    def sample_name(self, split: str, index: int) -> str:
        return self.samples(split)[index][1]

    def path(self, kind: str, split: str, index: int) -> Path:
        city, name = self.samples(split)[index]
        return self.root / FOLDER[kind] / split / city / f"{name}{SUFFIX[kind]}"

    def stored_tasks_in(self, split: str) -> tuple[str, ...]:
        if split not in LABELLED:
            return ()
        return tuple(task for task, kind in GROUND_TRUTH.items() if (self.root / FOLDER[kind] / split).is_dir())

    def require_ground_truth(self, split: str) -> tuple[str, ...]:
        tasks = self.tasks_in(split)
        if not tasks:
            why = "the test split has no public labels" if split not in LABELLED else "no gtFine/ or disparity/ folder"
            raise FileNotFoundError(f"{self.root}: no ground truth for {split} ({why})")
        return tasks

    # --------------------------------------------------------------------------------------- reading
    def read_labels(self, split: str, index: int) -> np.ndarray:
        return read_label_ids(self.path("semseg", split, index))

    def read_depth(self, split: str, index: int) -> np.ndarray:
        codes = read_disparity_codes(self.path("disparity", split, index))
        baseline, fx = read_camera(self.path("camera", split, index))
        return depth_from_disparity(codes, baseline, fx)

    def read(self, split: str, index: int, tasks: Sequence[str]) -> dict[str, np.ndarray]:
        rgb_path = self.path("rgb", split, index)
        rgb = formats.read_rgb(rgb_path)
        height, width = rgb.shape[:2]
        out = {}
        for task in tasks:
            if task not in GROUND_TRUTH:
                raise KeyError(f"the cityscapes layout has no task {task!r}")
            path = self.path(GROUND_TRUTH[task], split, index)
            value = READERS[task](self, split, index)
            if value.shape[:2] != (height, width):
                raise DataFormatError(
                    f"{path}: size {value.shape[1]}x{value.shape[0]} differs from its image {width}x{height}"
                )
            out[task] = value
        new_h, new_w = target_size(self.resize, height, width)
        if (new_h, new_w) != (height, width):
            rgb = np.array(Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.BILINEAR))
            out = {task: nearest(value, new_h, new_w) for task, value in out.items()}
        return {"rgb": rgb, **out}

    def restore_size(self, split: str, index: int, array: np.ndarray) -> np.ndarray:
        if self.resize is None:
            return array
        with Image.open(self.path("rgb", split, index)) as image:  # the header only
            width, height = image.size
        return array if array.shape[:2] == (height, width) else nearest(array, height, width)

    # ----------------------------------------------------------------------------------- predictions
    @classmethod
    def prediction_stem(cls, stem: str) -> str:
        return stem.removesuffix(SUFFIX["rgb"].removesuffix(".png"))

    # ------------------------------------------------------------------------------------- the check
    def find_problems(self, progress: bool = True) -> CheckResult:
        """Every bad file on one line starting with its path.

        Checked: image names and city folders; for train and val, per image its labelIds (when gtFine/<split>
        exists), disparity and camera (when disparity/<split> exists; camera/<split> must then exist too),
        missing ones and files that match no image; PNG content and modes (RGB 8-bit, labelIds 8-bit with
        values in the official table, disparity 16-bit), camera files with a positive baseline and fx, and
        sizes (each file against the dataset's most common size). The test split's images are read; its
        gtFine/disparity/camera folders are not (no public labels). A disparity map without a valid pixel is a
        warning."""
        root = self.root
        if not root.is_dir():
            return CheckResult([f"{root}: dataset root not found"])
        if not (root / FOLDER["rgb"]).is_dir():
            return CheckResult([f"{root}: no leftImg8bit/ folder (expected the Cityscapes layout: leftImg8bit/, gtFine/, "
                                "disparity/, camera/)"])
        result = CheckResult()
        files: list[tuple[Path, str]] = []
        for split in SPLITS:
            folder = root / FOLDER["rgb"] / split
            if not folder.is_dir():
                continue
            names = self._scan_images(folder, result.problems, files)
            if split not in LABELLED:
                continue
            kinds = []
            if (root / FOLDER["semseg"] / split).is_dir():
                kinds.append("semseg")
            if (root / FOLDER["disparity"] / split).is_dir():
                kinds.append("disparity")
                if (root / FOLDER["camera"] / split).is_dir():
                    kinds.append("camera")
                else:
                    result.problems.append(f"{root / FOLDER['camera'] / split}: missing folder (depth needs a camera "
                                           "file per disparity map)")
            for kind in kinds:
                self._scan_ground_truth(kind, split, names, result.problems, files)
        result.problems += size_problems(check_files(files, _check_file, result, progress))
        return result

    def _scan_images(self, folder: Path, problems: list[str], files: list[tuple[Path, str]]) -> list[tuple[str, str]]:
        names = []
        for city in sorted(folder.iterdir()):
            if not city.is_dir():
                problems.append(f"{city}: stray file (expected only <city> folders)")
                continue
            for entry in sorted(city.iterdir()):
                name = entry.name.removesuffix(SUFFIX["rgb"])
                match = NAME.fullmatch(name) if entry.name.endswith(SUFFIX["rgb"]) else None
                if not entry.is_file():
                    problems.append(f"{entry}: stray {'folder' if entry.is_dir() else 'entry'} (expected only images)")
                elif match is None or match.group(1) != city.name:
                    problems.append(f"{entry}: {IMAGE_NAME_HINT}")
                else:
                    names.append((city.name, name))
                    files.append((entry, "rgb"))
        return names

    def _scan_ground_truth(
        self, kind: str, split: str, names: list[tuple[str, str]], problems: list[str], files: list[tuple[Path, str]]
    ) -> None:
        folder = self.root / FOLDER[kind] / split
        expected = {folder / city / f"{name}{SUFFIX[kind]}": (city, name) for city, name in names}
        for path in expected:
            if path.is_file():
                files.append((path, kind))
            else:
                problems.append(f"{path}: missing file")
        images = {(city, name) for city, name in names}
        accepted = (SUFFIX[kind], *(OTHER_GTFINE if kind == "semseg" else ()))
        for city in sorted(folder.iterdir()):
            entries = sorted(city.iterdir()) if city.is_dir() else [city]
            for entry in entries:
                if entry in expected:
                    continue
                suffix = next((s for s in accepted if entry.name.endswith(s)), None)
                name = entry.name[: -len(suffix)] if suffix else None
                if not entry.is_file() or suffix is None or entry.parent == folder:
                    problems.append(f"{entry}: stray {'folder' if entry.is_dir() else 'file'} (expected "
                                    f"<city>/<city>_<seq>_<frame>{SUFFIX[kind]})")
                elif (city.name, name) not in images:
                    image = self.root / FOLDER["rgb"] / split / city.name / f"{name}{SUFFIX['rgb']}"
                    problems.append(f"{entry}: no matching {image}")


    # ------------------------------------------------------------------------------------ generation
    @classmethod
    def write_generated(cls, root: Path, split: str, index: int, sample: Sample) -> None:
        prefix = sample_prefix(index)
        where = lambda kind: root / kind / split / SYNTH_CITY  # noqa: E731
        atomic_write(lambda p: Image.fromarray(sample.rgb).save(p), where("leftImg8bit") / f"{prefix}_leftImg8bit.png")
        if split not in LABELLED:
            return
        label_ids = generated_label_ids()[sample.semseg]
        atomic_write(lambda p: Image.fromarray(label_ids).save(p), where("gtFine") / f"{prefix}_gtFine_labelIds.png")
        instance_ids = label_ids.astype(np.uint16)
        atomic_write(lambda p: Image.fromarray(instance_ids).save(p), where("gtFine") / f"{prefix}_gtFine_instanceIds.png")
        codes = encode_disparity(sample.depth, CITYSCAPES_BASELINE_M, sample.focal)
        atomic_write(lambda p: Image.fromarray(codes).save(p), where("disparity") / f"{prefix}_disparity.png")
        height, width = sample.rgb.shape[:2]
        camera = {
            "extrinsic": {"baseline": CITYSCAPES_BASELINE_M},
            "intrinsic": {"fx": sample.focal, "fy": sample.focal, "u0": width / 2, "v0": height / 2},
        }
        text = json.dumps(camera, indent=4) + "\n"
        atomic_write(lambda p: p.write_text(text), where("camera") / f"{prefix}_camera.json")


# task → how its ground truth is read (with the layout, the split and the index)
READERS = {"semseg": CityscapesLayout.read_labels, "depth": CityscapesLayout.read_depth}


def _check_file(path: Path, kind: str) -> tuple[str | None, str | None, tuple[int, int] | None]:
    """(problem, warning, (width, height)) of one file."""
    try:
        if kind == "camera":
            read_camera(path)
            return None, None, None
        real_format, _ = image_header(path)
        problem = content_problem(path, real_format)
        if problem is not None:
            return problem, None, None
        if kind == "rgb":
            array = formats.read_rgb(path)
        elif kind == "semseg":
            array = read_label_ids(path)
        else:
            array = read_disparity_codes(path)
            if not (array > 1).any():
                return None, f"{path}: warning: no valid disparity pixel (every value is 0 or 1 = invalid)", (
                    array.shape[1], array.shape[0])
    except DataFormatError as exc:
        return str(exc), None, None
    return None, None, (array.shape[1], array.shape[0])
