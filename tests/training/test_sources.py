import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mtclar.model.errors import AnchorError, DataError
from mtclar.training.sources import (
    AFEWVA_FPS,
    AnchorRow,
    LabelledImage,
    check_anchor_rows,
    load_labelled_videos,
    read_afewva,
    read_affectnet,
    read_anchor_csv,
    read_manifest,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def frame_folder(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:05d}.png"), np.full((8, 8, 3), 40 * i, dtype=np.uint8))
    return folder


# -- AFEW-VA -----------------------------------------------------------------------------------------


def test_read_afewva_sample(shared_dir):
    videos = read_afewva(shared_dir / "data" / "afewva-sample")
    assert [v.name for v in videos] == ["001"]
    video = videos[0]
    assert video.video_file is None and video.fps == AFEWVA_FPS == 25.0
    assert sorted(video.frame_files) == [0, 1, 2, 3, 4, 5]
    assert video.frame_files[3].name == "00003.png"
    # V 0, A 5 on [-10, 10] -> 0.0, 0.5
    assert video.labels == {i: (0.0, 0.5) for i in range(6)}
    assert load_labelled_videos(shared_dir / "data" / "afewva-sample")[0].labels == video.labels


def afewva_clip(root: Path, frames: dict, n_images: int = 2, name: str = "007") -> Path:
    frame_folder(root / name, n_images)
    write(root / name / f"{name}.json", json.dumps({"actor": "x", "video_id": name, "frames": frames}))
    return root


def test_read_afewva_scales_by_ten(tmp_path):
    root = afewva_clip(tmp_path, {"00000": {"valence": -10, "arousal": 3}, "00001": {"valence": 7, "arousal": 10}})
    write(tmp_path / "notes" / "readme.txt", "folders without <id>.json are skipped")
    (video,) = read_afewva(root)
    assert video.labels == {0: (-1.0, 0.3), 1: (0.7, 1.0)}


@pytest.mark.parametrize(("frames", "message"), [
    ({"00000": {"valence": 11, "arousal": 0}}, "frame 00000: valence/10 = 1.1 is outside [-1, 1]"),
    ({"00000": {"valence": "high", "arousal": 0}}, "frame 00000: valence = 'high' is not a number"),
    ({"00000": {"valence": 0}}, "frame 00000: missing value in column 'arousal'"),
    ({"00005": {"valence": 0, "arousal": 0}}, "frame 00005: labelled, but there is no image 00005.png"),
    ({"first": {"valence": 0, "arousal": 0}}, "frame first: frame names must be numbers"),
    ({"00000": 5}, "frame 00000: expected an object with valence and arousal, got 5"),
])
def test_read_afewva_errors_name_file_and_frame(tmp_path, frames, message):
    root = afewva_clip(tmp_path, frames)
    with pytest.raises(DataError) as error:
        read_afewva(root)
    assert str(root / "007" / "007.json") in str(error.value) and message in str(error.value)


def test_read_afewva_bad_json_and_empty_folder(tmp_path):
    write(tmp_path / "a" / "001" / "001.json", "{not json")
    frame_folder(tmp_path / "a" / "001", 1)
    with pytest.raises(DataError, match="001.json: not an AFEW-VA annotation"):
        read_afewva(tmp_path / "a")
    write(tmp_path / "b" / "001" / "001.json", json.dumps({"video_id": "001"}))  # no "frames"
    frame_folder(tmp_path / "b" / "001", 1)
    with pytest.raises(DataError, match="not an AFEW-VA annotation"):
        read_afewva(tmp_path / "b")
    write(tmp_path / "d" / "001" / "001.json", json.dumps({"frames": [0, 5]}))
    frame_folder(tmp_path / "d" / "001", 1)
    with pytest.raises(DataError, match="not an AFEW-VA annotation \\(frames is a list"):
        read_afewva(tmp_path / "d")
    (tmp_path / "c").mkdir()
    with pytest.raises(DataError, match="no AFEW-VA clip found"):
        read_afewva(tmp_path / "c")
    with pytest.raises(DataError, match="no AFEW-VA clip found"):
        read_afewva(tmp_path / "missing")


# -- manifests ---------------------------------------------------------------------------------------


def test_manifest_finds_videos_beside_the_csv(tmp_path, videos):
    (tmp_path / "single_face.mp4").symlink_to(videos / "single_face.mp4")
    csv = write(tmp_path / "labels.csv", "video,frame,valence,arousal,expression\n"
                "single_face,0,0.1,-0.2,1\nsingle_face,10,0.5,0.25,\nsingle_face,20,,,3\n")
    found, images = read_manifest(csv)
    assert images == []
    (video,) = found
    assert video.name == "single_face" and video.video_file == tmp_path / "single_face.mp4"
    assert video.frame_files is None and video.fps is None  # a video file carries its own fps
    assert video.labels == {0: (0.1, -0.2), 10: (0.5, 0.25)}  # frame 20 has no V/A
    assert video.expressions == {0: 1, 20: 3}


def test_manifest_search_dirs_and_frame_folders(tmp_path, videos):
    frame_folder(tmp_path / "frames" / "clip", 3)
    csv = write(tmp_path / "data" / "labels.csv", "frame,video,valence,arousal\n"
                "0,single_face,0,0\n2,clip,0.5,-0.5\n1,clip,0.25,0\n")
    found, _ = read_manifest(csv, [videos, tmp_path / "frames"], fps=10.0)
    by_name = {v.name: v for v in found}
    assert by_name["single_face"].video_file == videos / "single_face.mp4"
    clip = by_name["clip"]
    assert clip.video_file is None and sorted(clip.frame_files) == [0, 1, 2] and clip.fps == 10.0
    assert clip.labels == {2: (0.5, -0.5), 1: (0.25, 0.0)}
    assert [v.name for v in load_labelled_videos(csv, [videos, tmp_path / "frames"])] == ["single_face", "clip"]


def test_manifest_image_rows(tmp_path):
    csv = write(tmp_path / "labels.csv", "path,valence,arousal,expression\n"
                "img/a.png,0.1,0.2,3\n/abs/b.jpg,,,\n")
    videos, images = read_manifest(csv)
    assert videos == []
    assert images[0] == LabelledImage(tmp_path / "img" / "a.png", 0.1, 0.2, 3)
    assert images[1].path == Path("/abs/b.jpg") and np.isnan(images[1].valence) and images[1].expression == -1
    with pytest.raises(DataError, match="no video,frame rows"):
        load_labelled_videos(csv)


@pytest.mark.parametrize(("text", "message"), [
    ("name,valence\nx,0\n", "needs column(s) frame+video or path"),
    ("video,frame,valence\nsingle_face,,0\n", "row 2: missing value in column 'frame'"),
    ("video,frame,path,valence,arousal\nsingle_face,0,,0,0\n,,,0,0\n", "row 3: neither video nor path is given"),
    ("video,frame,valence,arousal\nsingle_face,0,0.1,\n", "row 2: valence and arousal go together"),
    ("video,frame,valence,arousal\nsingle_face,0,0.1,0\nsingle_face,0,0.2,0\n", "row 3: frame 0 of single_face"),
    ("video,frame,valence,arousal\nsingle_face,0,high,0\n", "row 2: valence = 'high' is not a number"),
    ("video,frame,valence,arousal\nsingle_face,0,0,0\nsingle_face,1,0,1.5\n", "row 3: arousal = 1.5 is outside"),
    ("video,frame,valence,arousal\nsingle_face,0,inf,0\n", "row 2: valence = 'inf' is not finite"),
    ("video,frame,valence,arousal\nsingle_face,2.5,0,0\n", "row 2: frame '2.5' must be a whole number >= 0"),
    ("video,frame,valence,arousal\nsingle_face,-1,0,0\n", "row 2: frame '-1' must be a whole number >= 0"),
    ("video,frame,valence,arousal\nsingle_face,x,0,0\n", "row 2: frame = 'x' is not a number"),
    ("video,frame,valence,arousal\nghost,0,0,0\n", "row 2: video 'ghost' not found"),
])
def test_manifest_errors_name_file_and_row(tmp_path, videos, text, message):
    csv = write(tmp_path / "labels.csv", text)
    with pytest.raises(DataError) as error:
        read_manifest(csv, [videos])
    assert str(csv) in str(error.value) and message in str(error.value)


def test_missing_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_manifest(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="expected an AFEW-VA folder or a .csv manifest"):
        load_labelled_videos(write(tmp_path / "labels.txt", "video,frame\n"))


# -- AffectNet ---------------------------------------------------------------------------------------


def test_read_affectnet_drops_classes_from_eight(tmp_path):
    csv = write(tmp_path / "training.csv", "subDirectory_filePath,face_x,expression,valence,arousal\n"
                "1/a.jpg,0,1,0.5,0.25\n"
                "2/b.jpg,0,7,-0.3,0.1\n"
                "3/c.jpg,0,8,0.1,0.1\n"  # none
                "4/d.jpg,0,10,-2,-2\n"  # no face: AffectNet writes V/A -2, dropped before they are checked
                "5/e.jpg,0,0,0,0\n")
    images = read_affectnet(csv)
    assert [i.path for i in images] == [tmp_path / "1/a.jpg", tmp_path / "2/b.jpg", tmp_path / "5/e.jpg"]
    assert [(i.valence, i.arousal, i.expression) for i in images] == [(0.5, 0.25, 1), (-0.3, 0.1, 7), (0, 0, 0)]
    assert read_affectnet(csv, images_root=tmp_path / "imgs")[0].path == tmp_path / "imgs" / "1" / "a.jpg"


def test_read_affectnet_errors(tmp_path):
    with pytest.raises(DataError, match="missing column.*arousal"):
        read_affectnet(write(tmp_path / "a.csv", "subDirectory_filePath,expression,valence\n1/a.jpg,1,0\n"))
    with pytest.raises(DataError, match="row 3: valence = 1.5 is outside"):
        read_affectnet(write(tmp_path / "b.csv", "subDirectory_filePath,expression,valence,arousal\n"
                             "1/a.jpg,1,0,0\n1/b.jpg,2,1.5,0\n"))


# -- anchors -----------------------------------------------------------------------------------------

HEADER = "video,frame,valence,arousal\n"


def test_read_anchor_csv(tmp_path):
    csv = write(tmp_path / "a.csv", HEADER + "clip,5,0.1,0.2\nother,0,-1,1\nclip,2, 0.5 ,-0.5\n")
    rows = read_anchor_csv(csv)
    assert rows == {"clip": [AnchorRow("clip", 5, 0.1, 0.2, 2), AnchorRow("clip", 2, 0.5, -0.5, 4)],
                    "other": [AnchorRow("other", 0, -1.0, 1.0, 3)]}
    check_anchor_rows(csv, rows, {"clip": 6, "other": 1, "unused": 3})
    assert read_anchor_csv(write(tmp_path / "empty.csv", HEADER)) == {}


@pytest.mark.parametrize(("body", "message"), [
    ("clip,1,0,0\n,2,0,0\n", "row 3: empty video"),
    ("clip,2.5,0,0\n", "row 2: frame '2.5' must be a whole number >= 0"),
    ("clip,two,0,0\n", "row 2: frame = 'two' is not a number"),
    ("clip,-3,0,0\n", "row 2: frame '-3' must be a whole number >= 0"),
    ("clip,1,nan,0\n", "row 2: valence = 'nan' is not finite"),
    ("clip,1,0,-inf\n", "row 2: arousal = '-inf' is not finite"),
    ("clip,1,0,0\nclip,2,1.01,0\n", "row 3: valence = 1.01 is outside [-1, 1]"),
    ("clip,1,0,\n", "row 2: missing value in column 'arousal'"),
    ("clip,5,0,0\nclip,6,0,0\nclip,5,0.1,0.1\n", "row 4: frame 5 of clip is already labelled on row 2"),
])
def test_bad_anchor_rows_are_named(tmp_path, body, message):
    csv = write(tmp_path / "anchors.csv", HEADER + body)
    with pytest.raises(AnchorError) as error:
        read_anchor_csv(csv)
    assert str(error.value).startswith(f"{csv} {message}")


def test_anchor_csv_missing_columns_or_file(tmp_path):
    csv = write(tmp_path / "anchors.csv", "video,frame,valence\nclip,1,0\n")
    with pytest.raises(AnchorError, match="missing column.*arousal"):
        read_anchor_csv(csv)
    with pytest.raises(AnchorError, match="missing column"):
        read_anchor_csv(write(tmp_path / "blank.csv", ""))
    with pytest.raises(AnchorError, match="file not found"):
        read_anchor_csv(tmp_path / "nope.csv")


def test_check_anchor_rows_unknown_video_and_frame_out_of_range(tmp_path):
    csv = write(tmp_path / "anchors.csv", HEADER + "clip,0,0,0\nclip,72,0,0\nghost,3,0,0\n")
    rows = read_anchor_csv(csv)
    with pytest.raises(AnchorError) as error:
        check_anchor_rows(csv, rows, {"clip": 72, "ghost": 10})
    assert str(error.value) == f"{csv} row 3: frame 72 is out of range for clip (72 frames, 0..71)"
    with pytest.raises(AnchorError) as error:
        check_anchor_rows(csv, rows, {"clip": 100})
    assert str(error.value) == f"{csv} row 4: unknown video 'ghost'; videos given: clip"
    with pytest.raises(AnchorError, match="videos given: none"):
        check_anchor_rows(csv, rows, {})
