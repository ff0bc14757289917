"""A user's own data: CSV, NPZ and image folders, and the dispatch by extension."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from miaudit.data import USER_FORMATS, load_csv, load_image_folder, load_npz, load_user_data
from miaudit.errors import ConfigError, DataError, UnknownNameError


# ----------------------------------------------------------------------------- CSV


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_with_header_and_string_labels(tmp_path):
    p = write(tmp_path / "pets.csv", "weight,label,height\n1.5,dog,2\n0.5,cat,1\n2.5,dog,3\n0.7,ant,0.1\n")
    ds = load_user_data(p)
    assert ds.name == "pets" and ds.x.shape == (4, 2) and ds.x.dtype == np.float32
    assert ds.class_names == ("ant", "cat", "dog") and list(ds.y) == [2, 1, 2, 0]
    assert np.allclose(ds.x[0], [1.5, 2.0])


def test_csv_headerless_with_label_index(tmp_path):
    p = write(tmp_path / "t.csv", "0.1,0.2,1\n0.3,0.4,0\n0.5,0.6,3\n")
    ds = load_csv(p, label_column=-1)
    assert ds.x.shape == (3, 2) and list(ds.y) == [1, 0, 3] and ds.num_classes == 4
    ds0 = load_user_data(write(tmp_path / "q.csv", '"a",1,2\n"b",3,4\n'), label_column=0)
    assert ds0.class_names == ("a", "b") and ds0.x.tolist() == [[1, 2], [3, 4]]


def test_csv_named_label_column_and_tsv(tmp_path):
    p = write(tmp_path / "t.tsv", "f1\tKind\n1\tx\n2\ty\n")
    ds = load_user_data(p, label_column="kind")  # names match case-insensitively
    assert ds.class_names == ("x", "y") and ds.x.ravel().tolist() == [1, 2]


def test_csv_negative_integer_labels_are_mapped(tmp_path):
    ds = load_csv(write(tmp_path / "n.csv", "label,f\n-1,0\n1,1\n-1,2\n"))
    assert ds.class_names == ("-1", "1") and list(ds.y) == [0, 1, 0]


@pytest.mark.parametrize(
    ("text", "kwargs", "error", "match"),
    [
        ("label,a,b\n1,0.5,nan\n0,1,2\n", {}, DataError, r"NaN or infinite \(first at row 1, column 'b'\)"),
        ("label,a,b\n1,0.5,\n0,1,2\n", {}, DataError, "row 2, column 'b' is empty"),
        ("label,a\n1,red\n", {}, DataError, "holds 'red', not a number"),
        ("label,a\n1,2,3\n", {}, DataError, "row 2 has 3 fields"),
        ("1,2\n3,4\n", {}, ConfigError, "say which column holds the labels"),
        ("a,b\n1,2\n", {}, ConfigError, "say which column holds the labels"),
        ("a,b\n1,2\n", {"label_column": "c"}, ConfigError, "no column 'c'"),
        ("1,2\n", {"label_column": 5}, ConfigError, "out of range"),
        ("label\n1\n", {}, DataError, "one column"),
        ("label,a\n", {}, DataError, "no data rows"),
        ("", {}, DataError, "is empty"),
    ],
)
def test_csv_errors(tmp_path, text, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_csv(write(tmp_path / "bad.csv", text), **kwargs)


# ----------------------------------------------------------------------------- NPZ

MARKER: list[Path] = []


def _side_effect(path: str) -> str:
    Path(path).write_text("unpickled!")
    return "boom"


class Booby:
    """Unpickling this would write a marker file: it must never happen."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (_side_effect, (str(self.path),))


def test_npz_round_trip_and_string_labels(tmp_path):
    x = np.random.default_rng(0).random((6, 2, 3))
    np.savez(tmp_path / "a.npz", x=x, y=np.array(["b", "a", "b", "c", "a", "a"]))
    ds = load_user_data(tmp_path / "a.npz")
    assert ds.x.shape == (6, 2, 3) and np.allclose(ds.x, x) and ds.class_names == ("a", "b", "c")
    assert list(ds.y) == [1, 0, 1, 2, 0, 0]
    np.savez(tmp_path / "b.npz", x=x, y=np.array([0, 1, 1, 0, 1, 0]), class_names=np.array(["no", "yes"]))
    assert load_npz(tmp_path / "b.npz").class_names == ("no", "yes")


def test_npz_object_array_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "marker.txt"
    bad = np.empty(2, dtype=object)
    bad[0], bad[1] = Booby(marker), Booby(marker)
    np.savez(tmp_path / "evil.npz", x=np.zeros((2, 2)), y=bad)
    with pytest.raises(DataError, match="object \\(pickled\\) array, which miaudit never unpickles"):
        load_user_data(tmp_path / "evil.npz")
    assert not marker.exists()
    # a pickle file merely named .npz is refused the same way
    import pickle

    (tmp_path / "p.npz").write_bytes(pickle.dumps({"x": Booby(marker)}))
    with pytest.raises(DataError):
        load_npz(tmp_path / "p.npz")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.zeros((3, 2))}, "lacks array\\(s\\) y"),
        ({"features": np.zeros((3, 2)), "labels": np.zeros(3)}, "lacks array\\(s\\) x, y"),
        ({"x": np.zeros(3), "y": np.zeros(3)}, "shape \\(n, features...\\)"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(4)}, "one label per row"),
        ({"x": np.array([[1.0, np.nan], [0, 0]]), "y": np.zeros(2)}, "NaN or infinite"),
        ({"x": np.array([["a", "b"]]), "y": np.zeros(1)}, "numeric array"),
        ({"x": np.zeros((2, 2)), "y": np.array([0.5, 1.0])}, "fractional"),
        ({"x": np.zeros((2, 2)), "y": np.array([0, 2]), "class_names": np.array(["a", "b"])}, "match class_names"),
    ],
)
def test_npz_errors_say_what_to_do(tmp_path, arrays, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=match):
        load_npz(tmp_path / "bad.npz")


def test_not_an_npz(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(DataError, match="npz"):
        load_npz(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(DataError, match="single .npy array"):
        load_npz(tmp_path / "single.npz")


# ----------------------------------------------------------------------------- image folders


def save(path: Path, mode: str, color, size=(8, 6), fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, format=fmt)


def test_flat_grayscale_folder(tmp_path):
    save(tmp_path / "zero" / "a.png", "L", 0)
    save(tmp_path / "zero" / "b.PNG", "L", 10)
    save(tmp_path / "one" / "a.png", "L", 255)
    (tmp_path / "one" / "readme.txt").write_text("ignored")
    ds = load_user_data(tmp_path)
    assert ds.x.shape == (3, 1, 6, 8) and ds.class_names == ("one", "zero")
    assert list(ds.y) == [0, 1, 1] and ds.x[0].max() == 1.0 and ds.parts == {}


def test_split_colour_folder_with_mixed_modes(tmp_path):
    save(tmp_path / "train" / "cat" / "1.png", "RGBA", (255, 0, 0, 128))
    save(tmp_path / "train" / "dog" / "1.jpg", "RGB", (0, 0, 255), fmt="JPEG")
    save(tmp_path / "test" / "cat" / "1.png", "L", 128)
    save(tmp_path / "test" / "emu" / "1.png", "P", 3)
    ds = load_image_folder(tmp_path)
    assert ds.x.shape == (4, 3, 6, 8) and ds.class_names == ("cat", "dog", "emu")
    assert list(ds.parts["train"]) == [0, 1] and list(ds.parts["test"]) == [2, 3]
    assert list(ds.y) == [0, 1, 0, 2]
    assert np.allclose(ds.x[2, :, 0, 0], 128 / 255)


def test_image_folder_errors(tmp_path):
    save(tmp_path / "a" / "1.png", "RGB", (1, 2, 3), size=(8, 8))
    save(tmp_path / "b" / "1.png", "RGB", (1, 2, 3), size=(9, 8))
    with pytest.raises(DataError, match="different sizes"):
        load_image_folder(tmp_path)
    (tmp_path / "b" / "1.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="not a readable PNG or JPEG"):
        load_image_folder(tmp_path)
    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="no <class>/<image>"):
        load_image_folder(empty)


# ----------------------------------------------------------------------------- dispatch


def test_dispatch_registry_and_errors(tmp_path):
    assert set(USER_FORMATS.names()) >= {".csv", ".tsv", ".npz", "directory"}
    (tmp_path / "data.xlsx").write_bytes(b"")
    with pytest.raises(UnknownNameError, match="user data format '.xlsx'"):
        load_user_data(tmp_path / "data.xlsx")
    with pytest.raises(DataError, match="does not exist"):
        load_user_data(tmp_path / "nope.csv")
    np.savez(tmp_path / "a.npz", x=np.zeros((2, 2)), y=np.zeros(2, dtype=int))
    with pytest.raises(ConfigError, match="label_column applies to CSV files only"):
        load_user_data(tmp_path / "a.npz", label_column=0)
