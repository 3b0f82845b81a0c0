"""Raw datasets as released: frame folders plus a coding sheet, read and checked.

Each loader maps its dataset's official folder layout onto the common table of
:mod:`mer_bench.data` (plus ``n_frames``, ``fps`` and ``frame_dir``) and checks the tree against
the sheet (:meth:`FrameTreeDataset.check`): missing clip folders, missing or unreadable frames,
frame counts or frame numbers that disagree with onset/offset, apex outside [onset, offset],
duplicate clips. ``mer-bench data check --dataset NAME --data-root PATH`` prints every problem at
once. Frames are sorted by the number in their file name (never lexically) and that number is
the frame index the sheets use.

Layouts (``DATA_ROOT`` = ``--data-root``; the coding sheet is found in it by name):

* ``casme``: ``CASME_raw_selected/sub01/EP01_5/EP01_5-1.jpg`` (``layout=cropped``:
  ``Cropped/sub01/EP01_5/reg_EP01_5-1.jpg``); sheet ``casme.xlsx``. 60 fps.
* ``casme2``: ``CASME2_RAW_selected/sub01/EP02_01f/img46.jpg``; sheet ``CASME2-coding-*.xlsx``
  (2014 preferred: the MEGC labels follow it; ``--dataset-set sheet=PATH`` picks another). 200 fps.
* ``casme2-cropped``: the official cropped release ``Cropped/sub01/EP02_01f/reg_img46.jpg`` (no
  face detection by default).
* ``casme^2`` (CAS(ME)^2): ``rawpic/s15/15_0401girlcrashing/img1.jpg``; workbook
  ``CAS(ME)^2code_final.xlsx`` with its two naming-rule sheets; micro-expressions only. 30 fps.
* ``samm``: ``SAMM/006/006_1_2/006_05562.jpg`` (or ``006/006_1_2/...`` directly); sheet
  ``SAMM_micro_only.xlsx`` (preferred) or ``SAMM_Micro_FACS_Codes_v2.xlsx``. 200 fps.
* ``smic-hs``: ``HS/s1/micro/negative/s1_ne_01/image443824.bmp`` (the class is the folder); sheet
  ``smic_apex.xlsx`` for onset/offset. 100 fps. SMIC has no apex; the rule is in
  :mod:`mer_bench.datasets.smic` (``read_smic_sheet``).
* ``casme3-a``: ``part_A/spNO.1/b/color/175.jpg`` (one folder per task video; a clip is the frames
  onset..offset of it); sheet ``casme3_table.xlsx``. 30 fps.

Classes (option ``classes``): the community schemes (:mod:`mer_bench.datasets.schemes`), e.g. CASME II
``5class`` (happiness, surprise, disgust, repression, others; the default), ``megc3``
(negative = disgust + repression, positive, surprise) and ``meranet3`` (disgust, happiness,
surprise); clips of other emotions are left out of :meth:`FrameTreeDataset.table`.

Representations, computed by :mod:`mer_bench.preprocess` and cached on disk
(``$MER_BENCH_CACHE/<dataset>/``, keyed by the sheet's hash, the clip and every parameter, so a
second run reads the cache): ``flow`` (onset -> apex flow image, 3 x 28 x 28 in [0, 1] like the
MEGC composite; ``flow_method`` ``dis`` by default, ``tvl1`` for the published pipeline),
``apex`` (the apex frame, 3 x ``size`` x ``size`` in [0, 1]), ``clip`` (3 x ``frames`` x size x
size, normalised per channel as MERANet does; ``clip_rule`` ``apex``: frames centred on the apex,
edges replicated, the default; ``tim``: onset..offset by the temporal interpolation model;
``uniform``: onset..offset linearly resampled) and ``dynamic`` (the
dynamic image of onset..offset, 3 x size x size in [0, 1]) and ``mesti`` (mer-bench's MESTI
stand-in, :func:`mer_bench.preprocess.mesti`, 3 x size x size in [0, 1]). The face box is found
on the onset frame (Haar cascade) and applied to the whole clip; where no face is found the whole
frame is used and the clip is listed in ``dataset.no_face_``. ``workers`` processes share the work,
with a progress bar.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mer_bench.atomic import atomic_path
from mer_bench.data import Dataset, DatasetError
from mer_bench.data_roots import require_data_root
from mer_bench.datasets.schemes import CLASS_SCHEMES, KNOWN_EMOTIONS, SCHEME_COLUMNS

__all__ = ["FrameTreeDataset", "frame_number", "list_frames", "preprocessing_options", "folder_representation"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

def frame_number(name: str) -> int | None:
    """The frame index in a file name: the last group of digits of its stem (``reg_img46.jpg`` -> 46,
    ``006_05562.jpg`` -> 5562); ``None`` when there is none."""
    digits = re.findall(r"\d+", Path(name).stem)
    return int(digits[-1]) if digits else None

def list_frames(folder: Path) -> list[tuple[int, Path]]:
    """``(frame number, path)`` of the images in ``folder``, sorted by frame number."""
    out = []
    for f in folder.iterdir():
        if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."):
            n = frame_number(f.name)
            if n is not None:
                out.append((n, f))
    return sorted(out)


#: class schemes per dataset: scheme -> {emotion in the sheet: class name}, classes in order

def preprocessing_options(ds: Any, for_identity: bool = True) -> dict[str, Any]:
    """The preprocessing settings of a raw dataset (``flow_method``, ``face_crop``, ``frames``,
    ``size``, ``clip_rule``), as its options (part of a run's identity and of every cache key) or,
    ``for_identity=False``, as the preprocessing job takes them. ``clip_rule`` enters the identity
    only when it is not the default ``apex``, so caches and run ids made before it existed stay valid."""
    opts = {"flow_method": ds.flow_method, "face_crop": ds.face_crop, "frames": ds.frames, "size": ds.size}
    if not for_identity or ds.clip_rule != "apex":
        opts["clip_rule"] = ds.clip_rule
    return opts


def folder_representation(folder: str | Path, representation: str, apex: int | None = None,
                          **preprocessing: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """One clip's representation from a folder of its frames (``mer-bench predict --clip``),
    computed as the raw loaders compute theirs (:func:`_compute`), every frame of the folder
    being onset..offset.

    Args:
        folder: images whose names carry their frame number (``img46.jpg``), sorted by it.
        representation: ``flow``, ``apex``, ``clip``, ``dynamic`` or ``mesti``.
        apex: the apex frame number (the nearest frame is used); ``None``: the middle frame.
        preprocessing: ``flow_method``, ``face_crop``, ``frames``, ``size``, ``clip_rule``
            (defaults: those of :class:`FrameTreeDataset`).

    Returns:
        ``(array, facts)``: the representation as the datasets give it (e.g. flow ``(3, 28, 28)``
        in [0, 1]) and what was done: ``n_frames``, ``onset``, ``apex``, ``offset`` (frame numbers),
        ``face_found`` and the preprocessing options.

    Raises:
        DatasetError: no frames in the folder, unreadable frames, an unknown representation.
    """
    import inspect

    folder = Path(folder)
    reps = FrameTreeDataset.representations
    if representation not in reps:
        raise DatasetError(f"a folder of frames gives {', '.join(reps)}, not {representation!r}")
    frames = list_frames(folder) if folder.is_dir() else []
    if not frames:
        raise DatasetError(f"no frames in {folder} (image files whose names end in their frame number, e.g. "
                           f"img46.jpg)")
    sig = inspect.signature(FrameTreeDataset.__init__).parameters
    params = {k: sig[k].default for k in ("flow_method", "face_crop", "frames", "size", "clip_rule")}
    unknown = set(preprocessing) - set(params)
    if unknown:
        raise DatasetError(f"unknown preprocessing option(s) {sorted(unknown)}; known: {', '.join(params)}")
    params.update(preprocessing)
    numbers = [n for n, _ in frames]
    target = numbers[len(numbers) // 2] if apex is None else int(apex)
    apex_pos = int(np.argmin([abs(n - target) for n in numbers]))
    arr, found = _compute((representation, [p for _, p in frames], apex_pos, params))
    return arr, {"n_frames": len(frames), "onset": numbers[0], "apex": numbers[apex_pos], "offset": numbers[-1],
                 "face_found": bool(found), **params}


def _read_cached(path: Path) -> np.ndarray | None:
    """A cached array, or ``None`` when absent or unreadable (then it is recomputed and replaced)."""
    if not path.is_file():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None

def _read_frames(paths: list[Path]) -> np.ndarray:
    import cv2

    frames = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise DatasetError(f"cannot read frame {p}")
        frames.append(img)
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise DatasetError(f"frames of {paths[0].parent} differ in size: {sorted(shapes)}")
    return np.asarray(frames)

def _compute(job: tuple) -> tuple[np.ndarray, bool]:
    """One clip's representation (run in worker processes): ``(array, face_found)``."""
    import cv2

    from mer_bench import preprocess as pp

    rep, paths, apex_pos, params = job
    frames = _read_frames(paths)
    box = pp.face_box(frames[0]) if params["face_crop"] else None
    frames = pp.crop_clip(frames, box)
    found = box is not None or not params["face_crop"]
    if rep == "flow":
        img = pp.flow_image(frames[0], frames[apex_pos], size=28, method=params["flow_method"])
        return img.transpose(2, 0, 1).astype(np.float32) / 255.0, found
    if rep == "dynamic":
        rgb = np.ascontiguousarray(frames[..., ::-1])
        img = cv2.resize(pp.dynamic_image(rgb), (params["size"], params["size"]), interpolation=cv2.INTER_AREA)
        return img.transpose(2, 0, 1).astype(np.float32) / 255.0, found
    if rep == "mesti":
        img = cv2.resize(pp.mesti(frames, apex_pos), (params["size"], params["size"]), interpolation=cv2.INTER_AREA)
        return img.transpose(2, 0, 1).astype(np.float32) / 255.0, found
    if rep == "apex":
        rgb = cv2.cvtColor(frames[apex_pos], cv2.COLOR_BGR2RGB)
        img = cv2.resize(rgb, (params["size"], params["size"]), interpolation=cv2.INTER_AREA)
        return img.transpose(2, 0, 1).astype(np.float32) / 255.0, found
    rgb = np.ascontiguousarray(frames[..., ::-1])
    return pp.temporal_clip(rgb, apex_pos, params["frames"], params["size"], params["clip_rule"]), found

class FrameTreeDataset(Dataset):
    """Base of frame-folder datasets. Subclasses give ``fps``, ``sheet_patterns``, ``read_sheet``
    and ``clip_dir(row)``.

    Args:
        data_root: the dataset folder (see :mod:`mer_bench.data_roots` for the other ways to give it).
        sheet: a coding-sheet path overriding the one found in the data root.
    """

    fps: ClassVar[int]
    sheet_patterns: ClassVar[tuple[str, ...]]
    representations: ClassVar[tuple[str, ...]] = ("flow", "apex", "clip", "dynamic", "mesti")
    scheme_key: ClassVar[str]
    default_classes: ClassVar[str] = "5class"

    def __init__(self, data_root: str | None = None, sheet: str | None = None, classes: str | None = None,
                 flow_method: str = "dis", face_crop: bool = True, frames: int = 16, size: int = 112,
                 workers: int = 1, clip_rule: str = "apex") -> None:
        from mer_bench.preprocess import CLIP_RULES, FLOW_METHODS

        self.data_root = data_root
        self.sheet = sheet
        self.classes_scheme = classes or self.default_classes
        if flow_method not in FLOW_METHODS:
            raise DatasetError(f"{self.name}: unknown flow_method {flow_method!r}; choose {', '.join(FLOW_METHODS)}")
        if clip_rule not in CLIP_RULES:
            raise DatasetError(f"{self.name}: unknown clip_rule {clip_rule!r}; choose {', '.join(CLIP_RULES)}")
        self.clip_rule = clip_rule
        self.flow_method = flow_method
        self.face_crop = face_crop
        self.frames = frames
        self.size = size
        self.workers = workers
        schemes = CLASS_SCHEMES[self.scheme_key]
        if self.classes_scheme not in schemes:
            raise DatasetError(f"{self.name}: unknown class scheme {self.classes_scheme!r}; "
                               f"choose {', '.join(schemes)}")
        mapping = schemes[self.classes_scheme]
        self.classes = tuple(dict.fromkeys(mapping.values()))
        self._mapping = mapping
        self._sheet_table: pd.DataFrame | None = None
        self._table: pd.DataFrame | None = None
        self._cache: dict[str, np.ndarray] = {}
        self.no_face_: list[str] = []

    def options(self) -> dict[str, Any]:
        opts = {"classes": self.classes_scheme, **preprocessing_options(self)}
        return opts if self.sheet is None else {**opts, "sheet": Path(self.sheet).name}

    @property
    def root(self) -> Path:
        return require_data_root(self.name, self.data_root)

    def sheet_path(self) -> Path:
        if self.sheet is not None:
            return Path(self.sheet)
        for pattern in self.sheet_patterns:
            found = sorted(self.root.glob(pattern))
            if found:
                return found[0]
        above = next((f for pattern in self.sheet_patterns if not pattern.startswith("**")
                      for f in sorted(self.root.parent.glob(pattern))), None)
        hint = (f"; there is one in the folder above ({above}): is the data root one level too deep? Give "
                f"--data-root {self.root.parent}" if above is not None else "")
        raise DatasetError(f"no coding sheet in {self.root} (looked for {', '.join(self.sheet_patterns)}); "
                           f"give one with --dataset-set sheet=PATH{hint}")

    def read_sheet(self, path: Path) -> pd.DataFrame:  # pragma: no cover - interface
        raise NotImplementedError

    def clip_dir(self, row) -> Path:  # pragma: no cover - interface
        raise NotImplementedError

    def sheet_table(self) -> pd.DataFrame:
        if self._sheet_table is None:
            self._sheet_table = self.read_sheet(self.sheet_path())
        return self._sheet_table

    def misplaced_root(self) -> str | None:
        """One message when no clip folder is where the sheet says but the clips sit one level off
        (the data root given is the release's inner folder, or the folder above it); ``None``
        otherwise. Looks at the first clips of the sheet only, so it costs a few ``stat`` calls."""
        rows = list(self.sheet_table().head(5).itertuples())
        if not rows:
            return None
        root = self.root
        expected = [self.clip_dir(r) for r in rows]
        if any(p.is_dir() for p in expected):
            return None
        try:
            rels = [p.relative_to(root) for p in expected]
        except ValueError:  # a clip_dir outside the root: nothing to suggest
            return None
        candidates = [root.parent, root.parent.parent]
        with contextlib.suppress(OSError):
            children = sorted(p for p in root.iterdir() if p.is_dir())[:50]
            candidates += children
            for child in children[:20]:
                with contextlib.suppress(OSError):
                    candidates += sorted(p for p in child.iterdir() if p.is_dir())[:20]
        for cand in candidates:
            if cand != root and sum((cand / rel).is_dir() for rel in rels) >= max(1, len(rels) // 2):
                return (f"no clip folder of the coding sheet is under the data root {root} (e.g. {expected[0]} is "
                        f"missing), but they are under {cand} (e.g. {cand / rels[0]}): give --data-root {cand}")
        return None

    def check(self) -> list[str]:
        """Every problem of the tree against the sheet, one line each (empty: usable)."""
        table = self.sheet_table()
        misplaced = self.misplaced_root()
        if misplaced:
            return [misplaced]
        problems = []
        dup = table[table.duplicated(["subject", "clip"], keep=False)]
        for key in sorted(set(dup["subject"] + "/" + dup["clip"])):
            problems.append(f"{key}: listed more than once in the sheet")
        for row in table.itertuples():
            key = f"{row.subject}/{row.clip}"
            if row.emotion not in KNOWN_EMOTIONS[self.scheme_key]:
                problems.append(f"{key}: unknown emotion label {row.emotion!r}")
            folder = self.clip_dir(row)
            if not folder.is_dir():
                problems.append(f"{key}: clip folder {folder} is missing")
                continue
            frames = list_frames(folder)
            if not frames:
                problems.append(f"{key}: no frames in {folder}")
                continue
            numbers = [n for n, _ in frames]
            for _, f in frames:
                if f.stat().st_size == 0:
                    problems.append(f"{key}: frame {f.name} is empty (unreadable)")
            if pd.isna(row.onset) or pd.isna(row.offset):
                problems.append(f"{key}: the sheet gives no onset/offset")
                continue
            wanted = set(range(int(row.onset), int(row.offset) + 1))
            missing = sorted(wanted - set(numbers))
            if missing:
                shown = ", ".join(str(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
                problems.append(f"{key}: {len(missing)} frame(s) between onset {row.onset} and offset {row.offset} "
                                f"missing in {folder} ({shown})")
            if pd.isna(row.apex):
                problems.append(f"{key}: no apex frame")
            elif not int(row.onset) <= int(row.apex) <= int(row.offset):
                problems.append(f"{key}: apex {row.apex} outside [onset {row.onset}, offset {row.offset}]")
        return problems

    def table(self) -> pd.DataFrame:
        """Clips of the chosen class scheme (others left out), in sheet order (built once)."""
        if self._table is not None:
            return self._table
        t = self.sheet_table()
        column = SCHEME_COLUMNS.get((self.scheme_key, self.classes_scheme), "emotion")
        t = t[t[column].isin(list(self._mapping))].reset_index(drop=True)
        out = pd.DataFrame({
            "sample_id": t["dataset"] + "/" + t["subject"] + "/" + t["clip"], "dataset": t["dataset"],
            "subject": t["subject"], "clip": t["clip"], "onset": t["onset"], "apex": t["apex"],
            "offset": t["offset"], "emotion": t["emotion"], "aus": t["aus"],
            "label": [self.classes.index(self._mapping[e]) for e in t[column]],
            "n_frames": (t["offset"] - t["onset"] + 1), "fps": self.fps,
            "frame_dir": [str(self.clip_dir(r)) for r in t.itertuples()],
        })
        self._table = out
        return out

    def fingerprint(self) -> str:
        """The sheet's hash plus every preprocessing option."""
        if getattr(self, "_fingerprint", None) is None:
            h = hashlib.sha256(self.sheet_path().read_bytes())
            h.update(repr(sorted(self.options().items())).encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def _job(self, rep: str, row) -> tuple:
        folder = Path(row.frame_dir)
        frames = [(n, p) for n, p in list_frames(folder) if int(row.onset) <= n <= int(row.offset)] \
            if folder.is_dir() else []
        if not frames:
            raise DatasetError(f"{row.sample_id}: no frames between onset {row.onset} and offset {row.offset} in "
                               f"{folder} (run `mer-bench data check --dataset {self.name}`)")
        numbers = [n for n, _ in frames]
        apex = int(row.apex) if not pd.isna(row.apex) else numbers[len(numbers) // 2]
        apex_pos = int(np.argmin([abs(n - apex) for n in numbers]))
        params = preprocessing_options(self, for_identity=False)
        return rep, [p for _, p in frames], apex_pos, params

    def _cache_path(self, rep: str, row) -> Path:
        import cv2

        from mer_bench.datasets.synthetic import cache_dir

        key = hashlib.sha256(repr((self.fingerprint(), rep, row.sample_id, int(row.onset), int(row.offset),
                                   str(row.apex), cv2.__version__)).encode()).hexdigest()[:20]
        return cache_dir() / self.name / f"{rep}-{key}.npy"

    def load(self, representation: str, index) -> np.ndarray:
        """The representation of the table rows at ``index`` (see the module docstring).

        Raises:
            DatasetError: an unknown representation, or a clip without readable frames.
        """
        if representation not in self.representations:
            raise DatasetError(f"{self.name} provides {', '.join(self.representations)}, not {representation!r}")
        rows = self.table().iloc[np.asarray(index)]
        todo = []
        for row in rows.itertuples():
            ck = f"{representation}:{row.sample_id}"
            if ck in self._cache:
                continue
            path = self._cache_path(representation, row)
            cached = _read_cached(path)
            if cached is not None:
                self._cache[ck] = cached
            else:
                todo.append((ck, path, row))
        if todo:
            misplaced = self.misplaced_root()
            if misplaced:
                raise DatasetError(misplaced)
            self._compute_many(representation, todo)
        return np.stack([self._cache[f"{representation}:{sid}"] for sid in rows["sample_id"]])

    def _compute_many(self, rep: str, todo: list) -> None:
        """Compute missing representations, storing each one as soon as it is done: an error or an
        interruption keeps every finished clip and never leaves a partial file under a cache name
        (each file is written to a temporary name, then renamed)."""
        from rich.progress import Progress

        jobs = [self._job(rep, row) for _, _, row in todo]
        with Progress(transient=True) as progress:
            task = progress.add_task(f"{self.name}: {rep} ({len(jobs)} clips)", total=len(jobs))
            if self.workers > 1:
                with ProcessPoolExecutor(self.workers) as pool:
                    for item, res in zip(todo, pool.map(_compute, jobs)):
                        self._store(item, res)
                        progress.advance(task)
            else:
                for item, job in zip(todo, jobs):
                    self._store(item, _compute(job))
                    progress.advance(task)

    def _store(self, item: tuple, result: tuple[np.ndarray, bool]) -> None:
        (ck, path, row), (arr, found) = item, result
        if not found:
            self.no_face_.append(row.sample_id)
        self._cache[ck] = arr
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "wb") as f:  # no temporary file is left on failure
                np.save(f, arr)
        except OSError:
            pass  # an unwritable cache only costs recomputation
