"""Image folders for the streamed linear probe (Table 3 at ImageNet's scale): layouts, file lists
that stay small, and the training and validation transforms the DataLoader workers apply.

Layouts (:func:`read_probe_images`)
-----------------------------------
- ImageNet's: ``DIR/train/<class>/*.JPEG`` and ``DIR/val/`` either as class folders
  (``val/<class>/*.JPEG``) or flat (``val/*.JPEG``) with a labels file: ImageNet's
  ``LOC_val_solution.csv`` (``ImageId,PredictionString``; the class is the first word of the
  prediction string; image ids without extension), or plain ``file,label`` lines (comma or
  whitespace separated, an optional header). The labels file is ``--val-labels FILE`` or, when not
  given, one of :data:`VAL_LABEL_FILES` found in ``DIR`` or ``DIR/val``. ``training/`` and
  ``test/``, ``validation/``... are accepted for train/ and val/ (:data:`~l3net.evaluate.splits.TRAIN_NAMES`).
- Any one-folder-per-class tree ``DIR/<class>/...``: a stratified ``1 / n_splits`` of each class
  (seeded permutation, at least one image per class of two or more) is held out for validation.

File lists are stored as one UTF-8 byte buffer with offsets and an integer label array
(:class:`ImageList`), not as Python objects: 1.28 M ImageNet paths take ~60 MB, and DataLoader
workers that fork from the main process share those pages instead of copying them as reference
counts are touched (the well-known growth of Python lists in forked workers).

Transforms (run in the workers, one seeded generator per image so results do not depend on the
number of workers and a resumed run sees the same pixels):

- training (:func:`train_crop`): Inception's random-size crop, 8 % to 100 % of the image area with
  an aspect ratio in [3/4, 4/3] (Szegedy et al. 2015, "Going deeper with convolutions", section 6;
  kept by Inception-v3, Szegedy et al. 2016), scaled to ``transfer_image_size`` (256 for the paper
  preset), a horizontal flip with probability 1/2, and the colour distortion of TensorFlow's
  Inception preprocessing (``inception_preprocessing.distort_color``): brightness +- 32/255,
  saturation x [0.5, 1.5], hue +- 0.2 of the hue circle, contrast x [0.5, 1.5], in one of four
  random orders, clipped to [0, 1] (:func:`distort_color`);
- validation (:func:`val_crop`): the probe's centre crop (``features.prepare_image``: smaller side
  scaled to ``transfer_image_size``, centre square), exactly what ``--solver lbfgs`` sees.
"""

from __future__ import annotations

import array
import csv
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import torch

from ..config import ModelConfig
from ..errors import DatasetError, MediaError
from ..media import IMAGE_EXTENSIONS, load_image
from .features import prepare_image
from .splits import TEST_NAMES, TRAIN_NAMES

if TYPE_CHECKING:
    from .datasets import LabelledFiles

#: Validation folder names, in order of preference (splits.TEST_NAMES, val first).
VAL_NAMES = tuple(sorted(TEST_NAMES, key=lambda n: (n not in ("val", "validation"), TEST_NAMES.index(n))))
#: Labels files looked for (in DIR, then DIR/val) when val/ is flat and no --val-labels is given.
VAL_LABEL_FILES = ("LOC_val_solution.csv", "val_labels.csv", "val_labels.txt", "val.csv", "val.txt")
#: First-row words that mark a labels file's header (ImageNet's LOC csv has ImageId,PredictionString).
_HEADER_WORDS = {"imageid", "image", "file", "filename", "path", "name", "id"}

#: Inception's random-size crop: fraction of the image area and aspect-ratio range (GoogLeNet, section 6).
CROP_AREA = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
#: TensorFlow Inception preprocessing's colour distortion: brightness delta, saturation and contrast
#: factor ranges, hue delta (fraction of the hue circle).
BRIGHTNESS_DELTA = 32 / 255
SATURATION_RANGE = (0.5, 1.5)
HUE_DELTA = 0.2
CONTRAST_RANGE = (0.5, 1.5)


# ------------------------------------------------------------------------------------------------
# file lists
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageList:
    """Paths (relative to ``base``) and class indices, packed into arrays (see the module docstring)."""

    base: Path
    blob: np.ndarray  # uint8: the UTF-8 relative paths, one after another
    offsets: np.ndarray  # int64 (n + 1,): path i is blob[offsets[i]:offsets[i + 1]]
    labels: np.ndarray  # int64 (n,)

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, index: int) -> Path:
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.base / bytes(self.blob[start:end]).decode("utf-8", "surrogateescape")

    def subset(self, indices: np.ndarray) -> "ImageList":
        builder = _ListBuilder(self.base)
        for i in indices:
            start, end = int(self.offsets[i]), int(self.offsets[i + 1])
            builder.add_bytes(bytes(self.blob[start:end]), int(self.labels[i]))
        return builder.build()

    def class_counts(self, num_classes: int) -> np.ndarray:
        return np.bincount(self.labels, minlength=num_classes)


class _ListBuilder:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.blob = bytearray()
        self.offsets = array.array("q", [0])
        self.labels = array.array("q")

    def add(self, relative: str, label: int) -> None:
        self.add_bytes(relative.encode("utf-8", "surrogateescape"), label)

    def add_bytes(self, relative: bytes, label: int) -> None:
        self.blob += relative
        self.offsets.append(len(self.blob))
        self.labels.append(label)

    def build(self) -> ImageList:
        return ImageList(self.base, np.frombuffer(bytes(self.blob), dtype=np.uint8),
                         np.frombuffer(self.offsets, dtype=np.int64).copy(),
                         np.frombuffer(self.labels, dtype=np.int64).copy())


@dataclass(frozen=True)
class ProbeImages:
    """A probe's images: ``train`` and ``val`` lists over the same ``classes``, the layout read, how
    val was chosen, and the files left out with the reason."""

    root: Path
    classes: tuple[str, ...]
    train: ImageList
    val: ImageList
    layout: str  # "train/val class folders", "train/ class folders + flat val/ with labels", "class folders"
    split_rule: str
    skipped: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.train) + len(self.val)


def count_images(root: str | os.PathLike[str]) -> int:
    """How many image files (by extension) are under ``root``: decides ``--solver auto``."""
    total = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        total += sum(1 for f in files if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS)
    return total


def find_split_dirs(root: Path) -> tuple[Path | None, Path | None]:
    """``(train/, val/)`` of ``root`` when present (either may be None). ``val/`` is preferred to
    ``test/``: ImageNet's distributions (Kaggle's ``ILSVRC/Data/CLS-LOC``) ship an unlabelled test/ beside it."""
    train = next((root / n for n in TRAIN_NAMES if (root / n).is_dir()), None)
    val = next((root / n for n in VAL_NAMES if (root / n).is_dir()), None)
    return train, val


def read_probe_images(
    root: str | os.PathLike[str],
    *,
    val_labels: str | os.PathLike[str] | None = None,
    n_splits: int = 5,
    seed: int = 0,
) -> ProbeImages:
    """Read an image folder in any layout of the module docstring, or say exactly what is wrong
    (:class:`~l3net.errors.DatasetError`: no class folders, an empty class, train/ without val/,
    a flat val/ without labels, a val class unknown to train/...)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory (expected one sub-folder of images per class, "
                           "or ImageNet's train/<class>/ and val/)")
    train_dir, val_dir = find_split_dirs(root)
    if train_dir is None and val_dir is not None:
        raise DatasetError(f"{root}: has {val_dir.name}/ but no train/; use train/<class>/ and {val_dir.name}/, "
                           "or put the class folders directly in the folder")
    if train_dir is None:
        return _holdout(root, n_splits, seed)
    if val_dir is None:
        raise DatasetError(f"{root}: has {train_dir.name}/ but no val/ (or test/); ImageNet's layout is "
                           "train/<class>/*.JPEG and val/ (class folders, or flat with LOC_val_solution.csv)")
    skipped: list[tuple[str, str]] = []
    classes = _class_dirs(train_dir)
    if not classes:
        raise DatasetError(f"{train_dir}: no class sub-folders (expected {train_dir.name}/<class>/*.JPEG)")
    index = {c: i for i, c in enumerate(classes)}
    train = _ListBuilder(root)
    _scan_classes(train_dir, classes, index, train, skipped)
    val = _ListBuilder(root)
    val_classes = _class_dirs(val_dir)
    if val_classes:
        unknown = sorted(set(val_classes) - set(classes))
        if unknown:
            raise DatasetError(f"{val_dir}: unknown class(es) {', '.join(unknown[:10])}"
                               f"{' ...' if len(unknown) > 10 else ''}: not among the classes of {train_dir}")
        _scan_classes(val_dir, val_classes, index, val, skipped)
        layout = f"{train_dir.name}/ and {val_dir.name}/ class folders"
        rule = f"predefined split: {train_dir.name}/ for training, {val_dir.name}/ for validation"
    else:
        labels_file = _find_labels_file(root, val_dir, val_labels)
        _scan_flat_val(val_dir, labels_file, index, val, skipped)
        layout = f"{train_dir.name}/ class folders, flat {val_dir.name}/ labelled by {labels_file.name}"
        rule = f"predefined split: {train_dir.name}/ for training, {val_dir.name}/ ({labels_file.name}) for validation"
    train_list, val_list = train.build(), val.build()
    if len(val_list) == 0:
        raise DatasetError(f"{val_dir}: no usable validation images" + (":\n" + _fmt(skipped) if skipped else ""))
    return ProbeImages(root, tuple(classes), train_list, val_list, layout, rule, tuple(skipped))


def _fmt(skipped: Sequence[tuple[str, str]], limit: int = 20) -> str:
    from .datasets import format_skipped

    return format_skipped(skipped, limit)


def _class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> tuple[list[str], list[str]]:
    """(images, other files) under ``folder``, relative, sorted; hidden entries ignored."""
    images, others = [], []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(current, folder)
        for name in files:
            if name.startswith("."):
                continue
            path = name if rel == "." else os.path.join(rel, name)
            (images if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS else others).append(path)
    return sorted(images), sorted(others)


def _scan_classes(folder: Path, classes: Sequence[str], index: dict[str, int], out: _ListBuilder,
                  skipped: list[tuple[str, str]]) -> None:
    skipped += [(str(p), "not inside a class sub-folder") for p in sorted(folder.iterdir())
                if p.is_file() and not p.name.startswith(".")]
    empty = []
    prefix = os.path.relpath(folder, out.base)
    for name in classes:
        images, others = _image_files(folder / name)
        skipped += [(str(folder / name / o), f"not an image file ({os.path.splitext(o)[1] or 'no extension'})")
                    for o in others]
        if not images:
            empty.append(name)
        for rel in images:
            out.add(os.path.join(prefix, name, rel), index[name])
    if empty:
        raise DatasetError(f"{folder}: empty class folder(s) {', '.join(empty[:20])}"
                           f"{' ...' if len(empty) > 20 else ''} (no image files); remove them or add images")


def _holdout(root: Path, n_splits: int, seed: int) -> ProbeImages:
    classes = _class_dirs(root)
    if not classes:
        raise DatasetError(f"{root}: no class sub-folders (expected one sub-folder of images per class, "
                           "or ImageNet's train/<class>/ and val/)")
    if len(classes) < 2:
        raise DatasetError(f"{root}: only one class ({classes[0]}); classification needs at least two")
    skipped: list[tuple[str, str]] = []
    everything = _ListBuilder(root)
    _scan_classes(root, classes, {c: i for i, c in enumerate(classes)}, everything, skipped)
    files = everything.build()
    val_index = []
    for label in range(len(classes)):
        members = np.flatnonzero(files.labels == label)
        held = round(len(members) / n_splits) if len(members) >= 2 else 0
        held = max(held, 1) if len(members) >= 2 else 0
        order = np.random.default_rng([seed, label]).permutation(len(members))
        val_index.append(members[np.sort(order[:held])])
    val_set = np.sort(np.concatenate(val_index))
    mask = np.zeros(len(files), dtype=bool)
    mask[val_set] = True
    rule = f"stratified hold-out: 1/{n_splits} of each class for validation (seed {seed})"
    return ProbeImages(root, tuple(classes), files.subset(np.flatnonzero(~mask)), files.subset(val_set),
                       "class folders", rule, tuple(skipped))


def _find_labels_file(root: Path, val_dir: Path, given: str | os.PathLike[str] | None) -> Path:
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            raise DatasetError(f"{path}: labels file not found")
        return path
    for folder in (root, val_dir):
        for name in VAL_LABEL_FILES:
            if (folder / name).is_file():
                return folder / name
    raise DatasetError(
        f"{val_dir}: images are not in class folders, and no labels file was found; give --val-labels FILE "
        f"(ImageNet's LOC_val_solution.csv, or 'file,label' lines) or put one of {', '.join(VAL_LABEL_FILES)} "
        f"in {root} or {val_dir}"
    )


def read_labels_file(path: Path) -> Iterator[tuple[int, str, str]]:
    """``(line number, file or image id, label)`` of a labels file: ImageNet's ``LOC_val_solution.csv``
    (the label is the first word of ``PredictionString``) or ``file,label`` / ``file label`` lines."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            first = True
            loc = False
            for number, line in enumerate(handle, start=1):
                text = line.strip()
                if not text:
                    continue
                fields = next(csv.reader([text])) if "," in text else text.split()
                fields = [f.strip() for f in fields]
                if first:
                    first = False
                    if fields[0].lower() in _HEADER_WORDS:
                        loc = len(fields) > 1 and fields[1].lower() == "predictionstring"
                        continue
                if len(fields) < 2 or not fields[0] or not fields[1]:
                    raise DatasetError(f"{path}, line {number}: expected 'file,label', got {text[:80]!r}")
                label = fields[1].split()[0] if loc else fields[1]
                yield number, fields[0], label
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable labels file ({exc})") from exc


def _scan_flat_val(val_dir: Path, labels_file: Path, index: dict[str, int], out: _ListBuilder,
                   skipped: list[tuple[str, str]]) -> None:
    images, others = _image_files(val_dir)
    skipped += [(str(val_dir / o), f"not an image file ({os.path.splitext(o)[1] or 'no extension'})") for o in others]
    by_name: dict[str, str] = {}
    for rel in images:
        by_name[rel] = rel
        by_name.setdefault(os.path.splitext(rel)[0], rel)  # LOC_val_solution.csv names images without extension
    labelled: dict[str, int] = {}
    for number, name, label in read_labels_file(labels_file):
        if label not in index:
            raise DatasetError(f"{labels_file}, line {number}: class {label!r} is not a class folder of train/")
        rel = by_name.get(name) or by_name.get(os.path.basename(name))
        if rel is None:
            skipped.append((str(val_dir / name), f"listed in {labels_file.name} but not found in {val_dir}"))
            continue
        labelled[rel] = index[label]
    prefix = os.path.relpath(val_dir, out.base)
    for rel in images:
        if rel in labelled:
            out.add(os.path.join(prefix, rel), labelled[rel])
        else:
            skipped.append((str(val_dir / rel), f"no label in {labels_file.name}"))


# ------------------------------------------------------------------------------------------------
# transforms
# ------------------------------------------------------------------------------------------------
def crop_box(width: int, height: int, rng: np.random.Generator,
             area: tuple[float, float] = CROP_AREA, ratio: tuple[float, float] = CROP_RATIO,
             attempts: int = 10) -> tuple[int, int, int, int]:
    """Inception's random-size crop ``(left, top, width, height)`` in pixels: area uniform in
    ``area`` x the image's, aspect ratio log-uniform in ``ratio``; after ``attempts`` misses the
    centre square crop of the whole image (as TensorFlow's distorted bounding box falls back to it)."""
    total = width * height
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(attempts):
        target = total * rng.uniform(area[0], area[1])
        aspect = math.exp(rng.uniform(log_low, log_high))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side, side


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB in [0, 1] -> HSV, hue in [0, 1)."""
    r, g, b = x[0], x[1], x[2]
    maxc, _ = x.max(dim=0)
    minc, _ = x.min(dim=0)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, maxc])


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(3, H, W) HSV (hue in [0, 1)) -> RGB in [0, 1]."""
    h, s, v = x[0], x[1], x[2]
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    options = torch.stack([
        torch.stack([v, q, p, p, t, v]), torch.stack([t, v, v, q, p, p]), torch.stack([p, p, t, v, v, q]),
    ])  # (3, 6, H, W): the RGB of each of the six hue sectors
    return options.gather(1, i.expand(3, 1, *i.shape)).squeeze(1)


def distort_color(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """TensorFlow Inception preprocessing's ``distort_color`` on a (3, H, W) float image in [0, 1]:
    brightness, saturation, hue and contrast with the ranges above, in one of its four orders,
    clipped to [0, 1]. Saturation and hue are changed in HSV, contrast around each channel's mean."""
    brightness = rng.uniform(-BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)
    saturation = rng.uniform(*SATURATION_RANGE)
    hue = rng.uniform(-HUE_DELTA, HUE_DELTA)
    contrast = rng.uniform(*CONTRAST_RANGE)

    def adjust_brightness(y: torch.Tensor) -> torch.Tensor:
        return y + brightness

    def adjust_saturation(y: torch.Tensor) -> torch.Tensor:
        hsv = rgb_to_hsv(y.clamp(0, 1))
        hsv[1] = (hsv[1] * saturation).clamp(0, 1)
        return hsv_to_rgb(hsv)

    def adjust_hue(y: torch.Tensor) -> torch.Tensor:
        hsv = rgb_to_hsv(y.clamp(0, 1))
        hsv[0] = (hsv[0] + hue) % 1.0
        return hsv_to_rgb(hsv)

    def adjust_contrast(y: torch.Tensor) -> torch.Tensor:
        mean = y.mean(dim=(1, 2), keepdim=True)
        return (y - mean) * contrast + mean

    orders = (
        (adjust_brightness, adjust_saturation, adjust_hue, adjust_contrast),
        (adjust_saturation, adjust_brightness, adjust_contrast, adjust_hue),
        (adjust_contrast, adjust_hue, adjust_brightness, adjust_saturation),
        (adjust_hue, adjust_saturation, adjust_contrast, adjust_brightness),
    )
    for op in orders[int(rng.integers(0, 4))]:
        x = op(x)
    return x.clamp(0.0, 1.0)


def train_crop(image: np.ndarray, size: int, rng: np.random.Generator, *, color: bool = True) -> np.ndarray:
    """Training augmentation of one H x W x 3 uint8 image -> ``size`` x ``size`` x 3 uint8: random-size
    crop (bilinear), horizontal flip with probability 1/2, colour distortion."""
    from PIL import Image

    height, width = image.shape[:2]
    left, top, w, h = crop_box(width, height, rng)
    crop = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    out = np.array(crop)  # a writable copy (torch.from_numpy wants one)
    if rng.random() < 0.5:
        out = np.ascontiguousarray(out[:, ::-1])
    if not color:
        return out
    x = torch.from_numpy(out).permute(2, 0, 1).float() / 255.0
    x = distort_color(x, rng)
    return (x * 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def val_crop(image: np.ndarray, config: ModelConfig) -> np.ndarray:
    """The probe's centre crop (``features.prepare_image``, transfer size)."""
    return prepare_image(image, config, transfer=True)


# ------------------------------------------------------------------------------------------------
# the DataLoader's dataset, batches and collation
# ------------------------------------------------------------------------------------------------
def to_labelled_files(images: ProbeImages) -> "LabelledFiles":
    """The same images as a :class:`~l3net.evaluate.datasets.LabelledFiles` with a predefined train/test
    split, for ``--solver lbfgs`` (features held in memory: small folders only)."""
    from .datasets import Example, LabelledFiles

    examples = tuple(Example(part.path(i), images.classes[int(part.labels[i])], fold=fold)
                     for part, fold in ((images.train, "train"), (images.val, "test")) for i in range(len(part)))
    return LabelledFiles("images", images.root, examples, images.classes, skipped=images.skipped)


@dataclass
class Decoded:
    """One item a worker returns: the prepared image (None when it could not be read), its label,
    its index in the list, and why it failed or what was odd about it."""

    image: np.ndarray | None
    label: int
    index: int
    error: str | None = None
    warnings: tuple[str, ...] = ()


class ProbeImageDataset(torch.utils.data.Dataset):
    """Items are ``(epoch, index)`` pairs (from :class:`EpochBatches`): the image ``index`` of
    ``images``, augmented with a generator seeded by ``(seed, epoch, index)`` when ``train``, else
    centre-cropped. Unreadable files come back as :class:`Decoded` with an ``error``."""

    def __init__(self, images: ImageList, config: ModelConfig, *, train: bool, seed: int = 0) -> None:
        self.images, self.config, self.train, self.seed = images, config, train, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: tuple[int, int]) -> Decoded:
        epoch, index = item
        label = int(self.images.labels[index])
        path = self.images.path(index)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                image = load_image(path)
                if self.train:
                    rng = np.random.default_rng([self.seed, epoch, index])
                    prepared = train_crop(image, self.config.transfer_image_size, rng)
                else:
                    prepared = val_crop(image, self.config)
            except MediaError as exc:
                return Decoded(None, label, index, exc.reason)
            except Exception as exc:  # noqa: BLE001 - one odd file must not end an hours-long run
                return Decoded(None, label, index, f"could not be prepared ({type(exc).__name__}: {exc})")
        return Decoded(prepared, label, index, None, tuple(str(w.message) for w in caught))


@dataclass
class Batch:
    """Collated items: ``images`` (B, 3, S, S) uint8 (None when none could be read), ``labels`` (B,),
    and the ``(index, reason)`` failures and warnings of this batch."""

    images: torch.Tensor | None
    labels: torch.Tensor
    failures: list[tuple[int, str]]
    warnings: list[str]

    def pin_memory(self) -> "Batch":
        if self.images is not None:
            self.images = self.images.pin_memory()
        self.labels = self.labels.pin_memory()
        return self


def collate(items: Sequence[Decoded]) -> Batch:
    good = [d for d in items if d.image is not None]
    failures = [(d.index, d.error or "unreadable") for d in items if d.image is None]
    found = [w for d in items for w in d.warnings]
    if not good:
        return Batch(None, torch.zeros(0, dtype=torch.long), failures, found)
    images = torch.from_numpy(np.stack([d.image for d in good])).permute(0, 3, 1, 2)
    return Batch(images, torch.tensor([d.label for d in good], dtype=torch.long), failures, found)


class EpochBatches(torch.utils.data.Sampler):
    """Batches of ``(epoch, index)`` pairs: each epoch a permutation of ``n`` from ``(seed, epoch)``
    cut into batches of ``batch_size`` (the last one shorter), from epoch ``start // per_epoch``,
    batch ``start % per_epoch`` to the end of epoch ``epochs - 1``. Without ``shuffle``: one pass
    in order (validation). A run resumed at batch ``start`` sees exactly the batches it would have."""

    def __init__(self, n: int, batch_size: int, *, seed: int = 0, epochs: int = 1, start: int = 0,
                 shuffle: bool = True) -> None:
        self.n, self.batch_size, self.seed, self.epochs, self.start, self.shuffle = n, batch_size, seed, epochs, start, shuffle

    @property
    def per_epoch(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __len__(self) -> int:
        return max(0, self.per_epoch * self.epochs - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        first_epoch, first_batch = divmod(self.start, self.per_epoch)
        for epoch in range(first_epoch, self.epochs):
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
            for b in range(first_batch if epoch == first_epoch else 0, self.per_epoch):
                yield [(epoch, int(i)) for i in order[b * self.batch_size:(b + 1) * self.batch_size]]


def loader(dataset: ProbeImageDataset, batches: EpochBatches, *, workers: int, pin_memory: bool = False,
           ) -> torch.utils.data.DataLoader:
    """A DataLoader over ``batches`` with ``workers`` processes (0: in this process)."""
    extra: dict[str, Any] = {"prefetch_factor": 2, "persistent_workers": False} if workers > 0 else {}
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate,
                                       pin_memory=pin_memory, **extra)
