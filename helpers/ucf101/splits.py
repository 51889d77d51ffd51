"""UCF101's official split files, and finding the videos they name on disk.

The split archive (``UCF101TrainTestSplits-RecognitionTask.zip``, folder ``ucfTrainTestlist/``)
holds, for splits N = 1, 2, 3:

``classInd.txt``     ``<index> <ClassName>`` per line, indices 1..101
``trainlistNN.txt``  ``<ClassName>/v_<ClassName>_gGG_cCC.avi <index>`` per line
``testlistNN.txt``   ``<ClassName>/v_<ClassName>_gGG_cCC.avi`` per line (no label)

Copies circulate with LF and with CRLF line endings; both are read. Splits are by group (the
``gGG`` part, one group is one actor/scene): split N tests on groups ``7N-6 .. 7N`` and trains on
the rest, so the same person never appears on both sides.

Videos are found in either layout: the original release (``UCF-101/<ClassName>/<file>.avi``)
or the zip mirror tensorflow_datasets uses (``UCF101/<file>.avi``, flat). File names are matched
case-insensitively because the two disagree on one class: the lists and the release spell
``v_HandStandPushups_...`` while the mirror's files read ``v_HandstandPushups_...``.

Nothing here imports TensorFlow or JAX.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

#: Official group ranges: split N tests on groups 7N-6 .. 7N (groups 22-25 are always training).
GROUPS_PER_TEST_SPLIT = 7
NUM_GROUPS = 25
SPLITS = (1, 2, 3)
SPLITS_FOLDER = "ucfTrainTestlist"
CLASS_INDEX_FILE = "classInd.txt"
VIDEO_EXTENSIONS = (".avi",)

_NAME_RE = re.compile(r"^v_(?P<cls>.+)_g(?P<group>\d+)_c(?P<clip>\d+)$")
#: Characters a video name may hold (it becomes a file name in the frame store).
_SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")


class SplitError(ValueError):
    """A split file is malformed, or names a video that is not there.

    The message names the file (and line) and says what is wrong.
    """


def test_groups(split: int) -> range:
    """Groups held out for testing in official split ``split`` (1, 2 or 3): ``7N-6 .. 7N``."""
    if split not in SPLITS:
        raise SplitError(f"split must be one of {SPLITS}, got {split!r}")
    first = GROUPS_PER_TEST_SPLIT * (split - 1) + 1
    return range(first, first + GROUPS_PER_TEST_SPLIT)


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    """One line of a train/test list.

    ``name``: the file name without extension as the list spells it, e.g.
    ``v_ApplyEyeMakeup_g08_c01`` (the key of the video everywhere in the course).
    ``class_name``: the folder part of the line. ``label``: 0-based index into the split's
    classes. ``group`` / ``clip``: parsed from the name (``None`` if it does not follow
    ``v_<Class>_gNN_cNN``). ``relpath``: the path as written in the list. ``source``: where the
    line came from (``file:line``), for error messages.
    """

    name: str
    class_name: str
    label: int
    group: int | None
    clip: int | None
    relpath: str
    source: str = dataclasses.field(default="", compare=False)


@dataclasses.dataclass(frozen=True)
class Split:
    """One official split: class names (in ``classInd.txt`` order) and its train/test videos."""

    number: int
    classes: tuple[str, ...]
    train: tuple[VideoEntry, ...]
    test: tuple[VideoEntry, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def entries(self, subset: str) -> tuple[VideoEntry, ...]:
        """``subset``: ``train`` or ``test``."""
        if subset not in ("train", "test"):
            raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")
        return self.train if subset == "train" else self.test

    def restrict(self, classes) -> Split:
        """The same split limited to ``classes`` (names), relabelled 0..k-1 in classInd order.

        For trying the protocol on a few classes (e.g. a partial download). Raises
        :class:`SplitError` for a class name the split does not have.
        """
        wanted = list(dict.fromkeys(classes))
        unknown = [c for c in wanted if c not in self.classes]
        if unknown:
            raise SplitError(f"split {self.number} has no class named {', '.join(unknown)}; "
                             f"known classes start {', '.join(self.classes[:5])} ...")
        kept = tuple(c for c in self.classes if c in set(wanted))
        relabel = {c: i for i, c in enumerate(kept)}

        def keep(entries):
            return tuple(dataclasses.replace(e, label=relabel[e.class_name])
                         for e in entries if e.class_name in relabel)

        return Split(self.number, kept, keep(self.train), keep(self.test))

    def summary(self) -> str:
        return (f"split {self.number}: {self.num_classes} classes, {len(self.train)} train videos, "
                f"{len(self.test)} test videos")


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; LF or CRLF; a UTF-8 BOM is dropped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SplitError(f"{path}: file not found") from None
    except OSError as err:  # a folder, a FIFO, no permission: said as what it is
        from helpers.checks import input_file_problem

        raise SplitError(f"{path}: {input_file_problem(path) or err.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise SplitError(f"{path}: not a text file ({err})") from None
    # splitlines() also splits on CR alone and on \x0b etc.; split on \n and strip a trailing
    # CR so that line numbers are the ones an editor shows.
    out = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r").strip()
        if line:
            out.append((number, line))
    return out


def read_class_index(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names from ``classInd.txt``, in index order (index 1 first).

    Raises :class:`SplitError` for a malformed line, a repeated index or name, or indices
    that are not exactly 1..N.
    """
    path = Path(path)
    by_index: dict[int, str] = {}
    for number, line in _read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SplitError(f"{path}, line {number}: expected '<index> <ClassName>', got {line!r}")
        index, name = int(parts[0]), parts[1]
        if index in by_index:
            raise SplitError(f"{path}, line {number}: index {index} appears twice")
        if name in by_index.values():
            raise SplitError(f"{path}, line {number}: class {name!r} appears twice")
        by_index[index] = name
    if not by_index:
        raise SplitError(f"{path}: no classes in the file")
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        missing = sorted(set(range(1, max(by_index) + 1)) - set(by_index))
        raise SplitError(f"{path}: class indices must run 1..{len(by_index)} without gaps "
                         f"(missing {missing[:5]}, lowest {min(by_index)})")
    return tuple(by_index[i] for i in range(1, len(by_index) + 1))


def parse_video_line(line: str, classes: tuple[str, ...], where: str,
                     class_lookup: dict[str, int] | None = None) -> VideoEntry:
    """Parse one list line: ``<Class>/<file>.avi`` optionally followed by a 1-based label.

    ``where`` (``file, line N``) goes into error messages. Raises :class:`SplitError`.
    """
    if class_lookup is None:
        class_lookup = _class_lookup(classes)
    parts = line.split()
    if len(parts) not in (1, 2):
        raise SplitError(f"{where}: expected '<Class>/<video>.avi [label]', got {line!r}")
    relpath = parts[0].replace("\\", "/")
    folder, _, filename = relpath.rpartition("/")
    stem, ext = os.path.splitext(filename)
    if ext.lower() not in VIDEO_EXTENSIONS or not stem:
        raise SplitError(f"{where}: {parts[0]!r} is not a video file name (.avi expected)")
    if not _SAFE_NAME_RE.match(stem):
        raise SplitError(f"{where}: video name {stem!r} has characters other than letters, "
                         "digits, '_', '-', '.', '+'")
    match = _NAME_RE.match(stem)
    if folder:
        class_name = folder.split("/")[-1]
    elif match:  # a bare file name: take the class from v_<Class>_gNN_cNN
        class_name = match.group("cls")
    else:
        raise SplitError(f"{where}: {parts[0]!r} names no class (expected '<Class>/<video>.avi')")
    label = class_lookup.get(class_name, class_lookup.get(class_name.lower()))
    if label is None:
        raise SplitError(f"{where}: class {class_name!r} is not in {CLASS_INDEX_FILE}")
    class_name = classes[label]
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise SplitError(f"{where}: label {parts[1]!r} is not a positive integer")
        given = int(parts[1])
        if given != label + 1:
            raise SplitError(f"{where}: label {given} does not match class {class_name!r}, which "
                             f"is {label + 1} in {CLASS_INDEX_FILE}")
    group = int(match.group("group")) if match else None
    clip = int(match.group("clip")) if match else None
    return VideoEntry(stem, class_name, label, group, clip, relpath, where)


def _class_lookup(classes) -> dict[str, int]:
    lookup = {name: i for i, name in enumerate(classes)}
    for i, name in enumerate(classes):
        lookup.setdefault(name.lower(), i)
    return lookup


def read_video_list(path: str | os.PathLike, classes: tuple[str, ...]) -> tuple[VideoEntry, ...]:
    """All entries of a ``trainlistNN.txt`` / ``testlistNN.txt`` file, in file order.

    An empty list is allowed (a small dataset may hold no group of some split).

    Raises :class:`SplitError` (naming the file and line) for a malformed line, an unknown
    class, a label that disagrees with ``classInd.txt``, or a video listed twice.
    """
    path = Path(path)
    lookup = _class_lookup(classes)
    entries = []
    seen: dict[str, int] = {}
    for number, line in _read_lines(path):
        where = f"{path}, line {number}"
        entry = parse_video_line(line, classes, where, lookup)
        key = entry.name.lower()
        if key in seen:
            raise SplitError(f"{where}: video {entry.name} is already listed on line {seen[key]}")
        seen[key] = number
        entries.append(entry)
    return tuple(entries)


def find_splits_dir(root: str | os.PathLike) -> Path:
    """The folder holding ``classInd.txt``: ``root`` itself or ``root/ucfTrainTestlist``."""
    root = Path(root)
    for candidate in (root, root / SPLITS_FOLDER):
        if (candidate / CLASS_INDEX_FILE).is_file():
            return candidate
    raise SplitError(f"{root}: no {CLASS_INDEX_FILE} here or in {root / SPLITS_FOLDER}; point at "
                     "the folder extracted from UCF101TrainTestSplits-RecognitionTask.zip")


def load_split(splits_dir: str | os.PathLike, number: int = 1) -> Split:
    """Read official split ``number`` (1, 2 or 3) from the folder holding the split files.

    Raises :class:`SplitError` for missing or malformed files and for a video listed in both
    the train and the test list.
    """
    if number not in SPLITS:
        raise SplitError(f"split must be one of {SPLITS}, got {number!r}")
    folder = find_splits_dir(splits_dir)
    classes = read_class_index(folder / CLASS_INDEX_FILE)
    train = read_video_list(folder / f"trainlist{number:02d}.txt", classes)
    test = read_video_list(folder / f"testlist{number:02d}.txt", classes)
    train_names = {e.name.lower(): e for e in train}
    for entry in test:
        if entry.name.lower() in train_names:
            raise SplitError(f"{entry.source}: video {entry.name} is also in the train list "
                             f"({train_names[entry.name.lower()].source})")
    return Split(number, classes, train, test)


def available_splits(splits_dir: str | os.PathLike) -> tuple[int, ...]:
    """Split numbers whose train and test lists are both present."""
    folder = find_splits_dir(splits_dir)
    return tuple(n for n in SPLITS if (folder / f"trainlist{n:02d}.txt").is_file()
                 and (folder / f"testlist{n:02d}.txt").is_file())


# --- finding the videos ------------------------------------------------------------------------

def index_videos(videos_dir: str | os.PathLike) -> dict[str, Path]:
    """Map lower-cased video names (no extension) to files under ``videos_dir``.

    Accepts the release layout (``<dir>/<Class>/<file>.avi``), the zip mirror's flat layout
    (``<dir>/<file>.avi``), or a parent folder holding either (``UCF-101/``, ``UCF101/``): the
    walk goes three levels deep. Raises :class:`SplitError` if the folder does not exist.
    """
    root = Path(videos_dir)
    if not root.is_dir():
        raise SplitError(f"{root}: videos folder not found")
    found: dict[str, Path] = {}
    root_depth = len(root.parts)
    for folder, subdirs, files in os.walk(root):
        depth = len(Path(folder).parts) - root_depth
        if depth >= 2:
            subdirs[:] = []  # <parent>/<UCF-101>/<Class>/ is as deep as the layouts go
        subdirs.sort()
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                found.setdefault(stem.lower(), Path(folder) / name)
    return found


def locate_videos(entries, videos_dir: str | os.PathLike, *, missing: str = "error",
                  index: dict[str, Path] | None = None):
    """Find each entry's file. Returns ``(found: {name: Path}, missing: [VideoEntry])``.

    ``missing``: ``error`` raises :class:`SplitError` naming the list file and line of the
    first missing videos (and how many there are); ``skip`` returns them instead.
    """
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    index = index_videos(videos_dir) if index is None else index
    found: dict[str, Path] = {}
    absent = []
    for entry in entries:
        path = index.get(entry.name.lower())
        if path is None:
            absent.append(entry)
        else:
            found[entry.name] = path
    if absent and missing == "error":
        shown = "\n".join(f"  {e.source}: {e.relpath}" for e in absent[:5])
        more = f"\n  ... and {len(absent) - 5} more" if len(absent) > 5 else ""
        raise SplitError(
            f"{len(absent)} of {len(found) + len(absent)} listed videos are not under {videos_dir} "
            f"(looked for <Class>/<file>.avi and <file>.avi):\n{shown}{more}\n"
            "Check the folder, or pass classes=[...] to use only the classes you downloaded.")
    return found, absent
