"""--calibration folders: images are read, and a folder the user must fix gets one clear line."""

from __future__ import annotations

import numpy as np
import pytest

from exporters.quantize import read_image_dir
from mobiledeploy.errors import UserError


def _png(path, value: int) -> None:
    from skimage.io import imsave

    imsave(str(path), np.full((8, 6, 3), value, np.uint8), check_contrast=False)


def test_reads_every_image_as_rgb_in_0_1(tmp_path):
    _png(tmp_path / "a.png", 255)
    _png(tmp_path / "b.PNG", 0)
    (tmp_path / "notes.txt").write_text("not an image")  # ignored: not an image suffix
    imgs = read_image_dir(tmp_path)
    assert [i.shape for i in imgs] == [(8, 6, 3), (8, 6, 3)]
    assert imgs[0].max() == 1.0 and imgs[1].max() == 0.0


def test_empty_folder_says_what_to_put_there(tmp_path):
    with pytest.raises(UserError, match="no images in") as e:
        read_image_dir(tmp_path)
    assert ".png" in e.value.hint


def test_corrupt_image_names_the_file_and_the_fix(tmp_path):
    _png(tmp_path / "a.png", 10)
    (tmp_path / "broken.jpg").write_bytes(b"hi\n")
    with pytest.raises(UserError) as e:
        read_image_dir(tmp_path)
    assert str(tmp_path / "broken.jpg") in str(e.value) and "\n" not in str(e.value)
    assert "--calibration" in e.value.hint
