"""Files on disk: atomic writes leave nothing half-written; JSON and tensor files read back or refuse."""

import os

import numpy as np
import pytest
import torch

from skdcec._files import (
    atomic_folder,
    file_sha256,
    plain_json,
    read_json,
    read_tensor_file,
    write_file_atomically,
    write_json,
    write_tensor_file,
)


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """write_file_atomically replaces a file in one rename; a failure leaves the old file and no litter."""
    path = tmp_path / "out.csv"
    path.write_bytes(b"old")
    write_file_atomically(path, b"new")
    assert path.read_bytes() == b"new"

    def failing_replace(source, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        write_file_atomically(path, b"newer")
    assert path.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["out.csv"]


def test_a_failed_folder_leaves_nothing(tmp_path):
    """atomic_folder: an error in the block removes the temporary folder and creates nothing."""
    target = tmp_path / "results"
    with (
        pytest.raises(RuntimeError),
        atomic_folder(target, overwrite=False, replaceable=lambda p: True) as work,
    ):
        (tmp_path / "marker").write_text("x")
        open(os.path.join(work, "half.txt"), "w").close()
        raise RuntimeError("stop")
    assert sorted(os.listdir(tmp_path)) == ["marker"]


def test_json_round_trips_plain_data_and_numpy_scalars(tmp_path):
    data = {"n": np.int64(3), "x": np.float32(0.5), "device": torch.device("cpu"), "shape": (2, 3)}
    assert plain_json(data) == {"n": 3, "x": 0.5, "device": "cpu", "shape": [2, 3]}
    write_json(tmp_path / "a.json", data)
    assert read_json(tmp_path / "a.json") == plain_json(data)
    with pytest.raises(TypeError, match="not JSON serialisable"):
        plain_json({"f": object()})
    (tmp_path / "bad.json").write_bytes(b"\xff{")
    with pytest.raises(ValueError):
        read_json(tmp_path / "bad.json")


def test_tensor_files_check_their_checksum_and_content(tmp_path):
    """A tensor file reads back only as written: a changed byte or foreign content is refused."""
    path = tmp_path / "t.pt"
    checksum = write_tensor_file(path, {"a": torch.arange(3)})
    torch.testing.assert_close(read_tensor_file(path, checksum)["a"], torch.arange(3))
    with pytest.raises(ValueError, match="checksum"):
        read_tensor_file(path, "0" * 64)
    torch.save([torch.arange(3)], path)
    with pytest.raises(ValueError, match="dictionary of named tensors"):
        read_tensor_file(path, file_sha256(path))
    with pytest.raises(ValueError, match="missing"):
        read_tensor_file(tmp_path / "absent.pt", checksum)
