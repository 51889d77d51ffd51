"""Official UCF101 split files: parsing (LF/CRLF, labels, errors) and finding videos."""

from pathlib import Path

import pytest

from helpers.ucf101 import splits as sp
from helpers.standins.ucf101 import make_mini_ucf101

CLASSES = "1 ApplyEyeMakeup\n2 HandstandPushups\n3 YoYo\n"


def write(folder: Path, name: str, text: str, crlf: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = text.replace("\n", "\r\n") if crlf else text
    (folder / name).write_bytes(data.encode())
    return folder / name


def official_files(folder: Path, crlf: bool) -> Path:
    write(folder, "classInd.txt", CLASSES, crlf)
    # The real lists spell the file names HandStandPushups in the HandstandPushups folder.
    write(folder, "trainlist01.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
          "HandstandPushups/v_HandStandPushups_g08_c01.avi 2\n"
          "YoYo/v_YoYo_g25_c04.avi 3\n", crlf)
    write(folder, "testlist01.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
          "\n"
          "HandstandPushups/v_HandStandPushups_g07_c02.avi\n"
          "YoYo/v_YoYo_g03_c01.avi\n", crlf)
    return folder


@pytest.mark.parametrize("crlf", [False, True])
def test_official_format_lf_and_crlf(tmp_path, crlf):
    folder = official_files(tmp_path / "ucfTrainTestlist", crlf)
    split = sp.load_split(tmp_path, 1)  # the parent folder is accepted too
    assert split.classes == ("ApplyEyeMakeup", "HandstandPushups", "YoYo")
    assert [e.name for e in split.train] == ["v_ApplyEyeMakeup_g08_c01",
                                             "v_HandStandPushups_g08_c01", "v_YoYo_g25_c04"]
    assert [e.label for e in split.train] == [0, 1, 2]
    assert [e.label for e in split.test] == [0, 1, 2]
    assert [e.group for e in split.test] == [1, 7, 3]
    assert split.test[2].clip == 1 and split.train[2].clip == 4
    assert split.test[1].class_name == "HandstandPushups"
    # Line numbers are the file's own (the blank line 2 counts).
    assert split.test[1].source.endswith("testlist01.txt, line 3")
    assert sp.find_splits_dir(tmp_path) == folder


def test_bom_and_tabs_are_accepted(tmp_path):
    write(tmp_path, "classInd.txt", "\ufeff1 A\n2 B\n")
    write(tmp_path, "trainlist01.txt", "A/v_A_g08_c01.avi\t1\nB/v_B_g09_c01.avi 2\n")
    write(tmp_path, "testlist01.txt", "A/v_A_g01_c01.avi\n")
    split = sp.load_split(tmp_path, 1)
    assert split.classes == ("A", "B") and len(split.train) == 2


@pytest.mark.parametrize("line, message", [
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2", "label 2 does not match class"),
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi one", "is not a positive integer"),
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1 extra", "expected '<Class>/<video>.avi"),
    ("Archery/v_Archery_g08_c01.avi 1", "class 'Archery' is not in classInd.txt"),
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.mp3 1", "not a video file name"),
    ("ApplyEyeMakeup/notes 1", "not a video file name"),
    ("ApplyEyeMakeup/v_Apply Eye.avi", "expected"),
])
def test_malformed_list_line_names_file_and_line(tmp_path, line, message):
    write(tmp_path, "classInd.txt", CLASSES)
    write(tmp_path, "trainlist01.txt", "YoYo/v_YoYo_g25_c04.avi 3\n" + line + "\n", crlf=True)
    write(tmp_path, "testlist01.txt", "YoYo/v_YoYo_g03_c01.avi\n")
    with pytest.raises(sp.SplitError) as info:
        sp.load_split(tmp_path, 1)
    assert message in str(info.value)
    assert "trainlist01.txt, line 2" in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("1 A\n1 B\n", "index 1 appears twice"),
    ("1 A\n2 A\n", "class 'A' appears twice"),
    ("1 A\n3 B\n", "without gaps"),
    ("A 1\n", "line 1: expected '<index> <ClassName>'"),
    ("\n\n", "no classes"),
])
def test_malformed_class_index(tmp_path, text, message):
    path = write(tmp_path, "classInd.txt", text)
    with pytest.raises(sp.SplitError, match=message) as info:
        sp.read_class_index(path)
    assert "classInd.txt" in str(info.value)


def test_duplicates_leaks_and_missing_files(tmp_path):
    official_files(tmp_path, crlf=False)
    with pytest.raises(sp.SplitError, match="split must be one of"):
        sp.load_split(tmp_path, 4)
    with pytest.raises(sp.SplitError, match="trainlist02.txt: file not found"):
        sp.load_split(tmp_path, 2)
    write(tmp_path, "testlist01.txt", "YoYo/v_YoYo_g03_c01.avi\nYoYo/v_YoYo_g03_c01.avi\n")
    with pytest.raises(sp.SplitError, match="line 2: video v_YoYo_g03_c01 is already listed on"):
        sp.load_split(tmp_path, 1)
    write(tmp_path, "testlist01.txt", "YoYo/v_YoYo_g25_c04.avi\n")
    with pytest.raises(sp.SplitError, match="also in the train list"):
        sp.load_split(tmp_path, 1)
    with pytest.raises(sp.SplitError, match="no classInd.txt"):
        sp.find_splits_dir(tmp_path / "nowhere")


def test_restrict_relabels_in_class_index_order(tmp_path):
    official_files(tmp_path, crlf=True)
    split = sp.load_split(tmp_path, 1).restrict(["YoYo", "ApplyEyeMakeup"])
    assert split.classes == ("ApplyEyeMakeup", "YoYo")
    assert [(e.name, e.label) for e in split.train] == [("v_ApplyEyeMakeup_g08_c01", 0),
                                                        ("v_YoYo_g25_c04", 1)]
    with pytest.raises(sp.SplitError, match="no class named Archery"):
        split.restrict(["Archery"])


def touch_videos(folder: Path, relpaths):
    for rel in relpaths:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"avi")


def test_locate_both_layouts_and_the_mirror_spelling(tmp_path):
    official_files(tmp_path / "lists", crlf=True)
    split = sp.load_split(tmp_path / "lists", 1)
    entries = split.train + split.test
    # The release: UCF-101/<Class>/<file as listed>.
    release = tmp_path / "release"
    touch_videos(release / "UCF-101", [e.relpath for e in entries])
    found, missing = sp.locate_videos(entries, release)  # the parent folder works
    assert not missing and len(found) == 6
    assert found["v_YoYo_g03_c01"] == release / "UCF-101" / "YoYo" / "v_YoYo_g03_c01.avi"
    # The zip mirror: flat, and HandstandPushups spelled with a lower-case s.
    mirror = tmp_path / "mirror" / "UCF101"
    touch_videos(mirror, [e.relpath.split("/")[1].replace("HandStand", "Handstand")
                          for e in entries])
    found, missing = sp.locate_videos(entries, mirror)
    assert not missing
    assert found["v_HandStandPushups_g08_c01"].name == "v_HandstandPushups_g08_c01.avi"


def test_missing_videos_are_named_with_their_list_line(tmp_path):
    official_files(tmp_path / "lists", crlf=False)
    split = sp.load_split(tmp_path / "lists", 1)
    videos = tmp_path / "videos"
    touch_videos(videos, [e.relpath for e in split.train])
    with pytest.raises(sp.SplitError) as info:
        sp.locate_videos(split.train + split.test, videos)
    text = str(info.value)
    assert "3 of 6 listed videos are not under" in text
    assert "testlist01.txt, line 1: ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi" in text
    found, missing = sp.locate_videos(split.train + split.test, videos, missing="skip")
    assert len(found) == 3 and [e.group for e in missing] == [1, 7, 3]
    with pytest.raises(sp.SplitError, match="videos folder not found"):
        sp.index_videos(tmp_path / "absent")


def test_official_group_rule():
    assert list(sp.test_groups(1)) == list(range(1, 8))
    assert list(sp.test_groups(2)) == list(range(8, 15))
    assert list(sp.test_groups(3)) == list(range(15, 22))


@pytest.mark.parametrize("layout", ["official", "flat"])
def test_mini_ucf_is_in_the_official_format(tmp_path, layout):
    mini = make_mini_ucf101(tmp_path / layout, num_classes=3, groups=(1, 9, 16, 23),
                            clips_per_group=1, frame_size=(48, 64), seconds=(0.4, 0.6),
                            layout=layout)
    raw = (mini.splits_dir / "trainlist01.txt").read_bytes()
    assert b"\r\n" in raw and raw.endswith(b"\r\n")
    assert sp.available_splits(mini.splits_dir) == (1, 2, 3)
    for number in (1, 2, 3):
        split = sp.load_split(mini.splits_dir, number)
        held_out = set(sp.test_groups(number))
        assert {e.group for e in split.test} <= held_out
        assert not {e.group for e in split.train} & held_out
        assert len(split.train) + len(split.test) == 12
        found, _ = sp.locate_videos(split.train + split.test, mini.videos_dir)
        assert len(found) == 12
    if layout == "official":
        assert (mini.videos_dir / mini.classes[0] / f"{mini.videos[0]}.avi").is_file()
    else:
        assert (mini.videos_dir / f"{mini.videos[0]}.avi").is_file()
    # Reused, not regenerated, when asked again with the same settings.
    stamp = (mini.videos_dir.parent / ".mini_ucf101.json").stat().st_mtime_ns
    again = make_mini_ucf101(tmp_path / layout, num_classes=3, groups=(1, 9, 16, 23),
                             clips_per_group=1, frame_size=(48, 64), seconds=(0.4, 0.6),
                             layout=layout)
    assert again == mini
    assert (mini.videos_dir.parent / ".mini_ucf101.json").stat().st_mtime_ns == stamp
