"""Inputs that ask for more than a machine has (issue 14): each is one line and exit 2, within
bounded memory, or a correct result where the input is legitimate.

The memory cases run the CLI in a child process (``hostile_run.run_cli``) under an address-space
limit and assert its peak RSS; the others run in-process. Every file is generated here.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hostile_run import run_cli  # noqa: E402

from miaudit.cli import main  # noqa: E402
from miaudit.data.labels import encode_labels  # noqa: E402
from miaudit.errors import ConfigError, MiauditError  # noqa: E402
from miaudit.experiments.config import parse_experiment  # noqa: E402
from miaudit.limits import LimitError, use_limits  # noqa: E402

PEAK_MB = 1024


def _one_line_error(rc: int, err: str, pattern: str = "") -> str:
    err = err.strip()
    assert rc == 2, err
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    assert pattern.lower() in err.lower(), err
    return err


def _cli(argv: list[str], capsys, pattern: str = "") -> str:
    rc = main(argv)
    return _one_line_error(rc, capsys.readouterr().err, pattern)


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MIAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    return {"MIAUDIT_CACHE_DIR": str(tmp_path / "cache")}


def _records(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _skops_model(path: Path, x: np.ndarray, labels: np.ndarray) -> Path:
    skops_io = pytest.importorskip("skops.io")
    from sklearn.linear_model import LogisticRegression

    skops_io.dump(LogisticRegression().fit(x, labels), path)
    return path


def _csv(path: Path, x: np.ndarray, labels: np.ndarray) -> Path:
    lines = ["a,b,c,d,label"] + [",".join(f"{v:.5f}" for v in row) + f",{lab}" for row, lab in zip(x, labels, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- memory, in a child


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """A 7 MB .npz whose x expands to 1.5 GiB of zeros (an honest archive, not a lying header)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    shape = (40_000, 10_000)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            block, left = bytes(64 << 20), shape[0] * shape[1] * 4
            while left > 0:
                f.write(block[: min(left, len(block))])
                left -= len(block)
        y = io.BytesIO()
        np.save(y, np.zeros(shape[0], np.int64))
        z.writestr("y.npy", y.getvalue())
    return path


def test_a_zip_bomb_npz_is_refused_end_to_end_in_bounded_memory(bomb, tmp_path, cache_env):
    x, y = _records()
    model = _skops_model(tmp_path / "m.skops", x, y)
    np.savez(tmp_path / "test.npz", x=x, y=y)
    r = run_cli(["audit", "--model-file", str(model), "--train", str(bomb), "--test", "test.npz", "--out", "out"], tmp_path, cache_env)
    _one_line_error(r.rc, r.stderr, "--limit array_bytes=")
    assert r.max_rss_mb < PEAK_MB, r.max_rss_mb
    assert not (tmp_path / "out").exists()


def test_sparse_integer_labels_audit_correctly_in_bounded_memory(tmp_path, cache_env):
    """Labels {0, 2**40}: two classes named by their integers, not 2**40 class names."""
    x, y = _records(200)
    labels = np.where(y == 1, 2**40, 0)
    model = _skops_model(tmp_path / "m.skops", x[:100], labels[:100])
    _csv(tmp_path / "train.csv", x[:100], labels[:100])
    _csv(tmp_path / "test.csv", x[100:], labels[100:])
    argv = ["audit", "--model-file", "m.skops", "--train", "train.csv", "--test", "test.csv", "--attacks", "loss", "--out", "out", "--no-report"]
    r = run_cli(argv, tmp_path, cache_env)
    assert r.rc == 0, r.stderr
    assert r.max_rss_mb < PEAK_MB, r.max_rss_mb
    record = json.loads((tmp_path / "out" / "results.json").read_text())
    assert record["dataset"]["class_names"] == ["0", str(2**40)]


def test_a_csv_past_the_table_bound_is_refused_before_parsing(tmp_path, cache_env):
    """A ~12 MB CSV against array_bytes=4m: refused from its size alone (scaled-down 150 MB case)."""
    rng = np.random.default_rng(0)
    rows = "\n".join(",".join(f"{v:.6f}" for v in r) + f",{i % 2}" for i, r in enumerate(rng.random((120_000, 10))))
    (tmp_path / "big.csv").write_text(",".join(f"f{i}" for i in range(10)) + ",label\n" + rows + "\n")
    r = run_cli(["audit", "--dataset", "big.csv", "--limit", "array_bytes=4m", "--out", "out"], tmp_path, cache_env)
    err = _one_line_error(r.rc, r.stderr, "--limit array_bytes=")
    assert "120,001 rows x 10 columns" in err
    assert r.max_rss_mb < PEAK_MB, r.max_rss_mb


def test_reading_a_csv_is_memory_lean(tmp_path):
    """~4.4 MB of numbers: the reader keeps about 4 bytes a value, not a Python string a cell."""
    from miaudit.data.tabular import load_tabular
    from miaudit.data.user import load_csv

    rng = np.random.default_rng(1)
    x = rng.random((40_000, 10))
    path = tmp_path / "t.csv"
    path.write_text("\n".join(["label," + ",".join(f"f{i}" for i in range(10))] + [f"{i % 3}," + ",".join(f"{v:.6f}" for v in r) for i, r in enumerate(x)]) + "\n")
    with use_limits(array_bytes=4 << 20):  # the float64 table is 3.5 MiB: lean readers fit in this bound
        single, (both, _) = load_csv(path), load_tabular(path)
    np.testing.assert_allclose(single.x, x, atol=1e-6)  # written with 6 decimals
    np.testing.assert_array_equal(single.x, both.x)
    assert single.class_names == both.class_names == ("0", "1", "2")


# --------------------------------------------------------------------------- labels and CSV headers


def test_label_encoding_keeps_dense_indices_and_names_sparse_ones():
    y, names = encode_labels(np.array([0, 3, 3]), source="s")
    assert list(y) == [0, 3, 3] and names == ("0", "1", "2", "3")  # column k stays label k
    y, names = encode_labels(np.array([0, 2**40, 0]), source="s")
    assert list(y) == [0, 1, 0] and names == ("0", str(2**40))
    y, names = encode_labels(np.array(["99999999999999999999999", "1"]), source="s")  # beyond int64: names
    assert names == ("1", "99999999999999999999999")
    with use_limits(classes=2), pytest.raises(LimitError, match="--limit classes="):
        encode_labels(np.array(["a", "b", "c"]), source="s")


@pytest.mark.parametrize("command", ["dataset", "outputs"])
def test_every_csv_reader_refuses_a_repeated_column_name(tmp_path, capsys, cache_env, command):
    if command == "dataset":
        (tmp_path / "d.csv").write_text("label,a,label\n0,1,1\n1,2,0\n")
        argv = ["audit", "--dataset", str(tmp_path / "d.csv")]
    else:
        (tmp_path / "o.csv").write_text("label,is_member,logit_0,logit_1,label\n0,1,0.1,0.2,1\n1,0,0.3,0.1,0\n")
        argv = ["audit-outputs", str(tmp_path / "o.csv")]
    _cli([*argv, "--out", str(tmp_path / "out")], capsys, "'label' appear more than once")


# --------------------------------------------------------------------------- images


def _png(width: int, height: int) -> bytes:
    """A valid 1x1 grayscale PNG whose header then claims ``width`` x ``height`` (CRC fixed)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    return bytes(data)


@pytest.mark.parametrize("side", [5_000, 100_000])  # Pillow warns past its bound, refuses past twice it
def test_an_image_claiming_too_many_pixels_is_refused_before_decoding(tmp_path, capsys, side):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "b").mkdir()
    (tmp_path / "imgs" / "a" / "bomb.png").write_bytes(_png(side, side))
    (tmp_path / "imgs" / "b" / "ok.png").write_bytes(_png(1, 1))
    _cli(["audit", "--dataset", str(tmp_path / "imgs"), "--out", str(tmp_path / "out")], capsys, "--limit image_pixels=")


def test_image_folders_are_bounded_in_total_and_unreadable_images_are_one_line(tmp_path, monkeypatch):
    from PIL import Image

    from miaudit.data.user import load_image_folder

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (32, 32)).save(tmp_path / cls / f"{i}.png")
    with use_limits(array_bytes=50_000), pytest.raises(LimitError, match="6 images as float32"):
        load_image_folder(tmp_path)
    assert load_image_folder(tmp_path).x.shape == (6, 3, 32, 32)
    os.chmod(tmp_path / "a" / "0.png", 0)
    try:
        if os.geteuid() == 0:  # root reads any file: make the read itself fail
            real_open = Path.open

            def denied(self, *args, **kwargs):
                if self.name == "0.png" and self.parent.name == "a":
                    raise PermissionError(13, "Permission denied", str(self))
                return real_open(self, *args, **kwargs)

            monkeypatch.setattr(Path, "open", denied)
        with pytest.raises(MiauditError, match="cannot be read.*Permission denied"):
            load_image_folder(tmp_path)
    finally:
        os.chmod(tmp_path / "a" / "0.png", 0o644)


# --------------------------------------------------------------------------- model folders


def _model_dir(tmp_path: Path, **arch_options) -> Path:
    from miaudit.models import ArchConfig, fit_classifier
    from miaudit.targets.model_dir import save_model_dir

    x, y = _records(40)
    clf = fit_classifier("mlp", x, y, num_classes=2, seed=0, options={"hidden": [4]}, progress=False)
    folder = save_model_dir(clf, ArchConfig("mlp", {"hidden": (4,)}), tmp_path / "model", num_classes=2, input_shape=(4,))
    if arch_options:
        meta = json.loads((folder / "model.json").read_text())
        meta["arch"]["options"].update(arch_options)
        (folder / "model.json").write_text(json.dumps(meta))
    return folder


def test_a_model_json_that_never_ends_or_nests_deeply_is_one_line(tmp_path, capsys):
    folder = _model_dir(tmp_path)
    meta = folder / "model.json"
    meta.unlink()
    meta.symlink_to("/dev/zero")
    _cli(["serve", str(folder), "--output", "full", "--port", "0"], capsys, "not a regular file")
    meta.unlink()
    meta.write_text("[" * 100_000 + "]" * 100_000)
    _cli(["serve", str(folder), "--output", "full", "--port", "0"], capsys, "--limit json_depth=")


def test_a_model_json_asking_for_terabytes_of_weights_is_refused_before_allocating(tmp_path, capsys):
    from miaudit.models import ArchConfig
    from miaudit.models.architectures import count_parameters

    assert count_parameters(ArchConfig("mlp", {"hidden": [10**7, 10**7]}), (4,), 2) > 10**14  # counted, not built
    folder = _model_dir(tmp_path, hidden=[10**7, 10**7])
    _cli(["serve", str(folder), "--output", "full", "--port", "0"], capsys, "--limit model_parameters=")


# --------------------------------------------------------------------------- counts, names, seeds


@pytest.fixture
def small_npz(tmp_path):
    x, y = _records()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    return str(tmp_path / "d.npz")


@pytest.mark.parametrize(
    "extra, pattern",
    [
        (["--shadow-models", "100000"], "--limit models="),
        (["--seed", "-1"], "[0, 4294967295]"),
        (["--seed", str(2**32)], "[0, 4294967295]"),
        (["--threat-model", "label-only", "--output", "full"], "would widen threat model 'label-only'"),
        (["--threat-model", "black-box", "--output", "top3", "--attacks", "nope"], "unknown attack"),  # narrowing is fine
    ],
)
def test_counts_seeds_and_outputs_are_checked_where_they_enter(tmp_path, capsys, cache_env, small_npz, extra, pattern):
    _cli(["audit", "--dataset", small_npz, *extra, "--out", str(tmp_path / "out")], capsys, pattern)


@pytest.mark.parametrize(
    "name, pattern",
    [("x" * 5000, "5,000 characters"), ("", "--dataset is empty"), ("  ", "--dataset is empty")],
)
def test_dataset_names_that_are_no_names_are_refused(tmp_path, capsys, cache_env, name, pattern):
    err = _cli(["audit", "--dataset", name, "--out", str(tmp_path / "out")], capsys, pattern)
    assert len(err) < 400


def test_records_without_features_are_refused(tmp_path, capsys, cache_env):
    np.savez(tmp_path / "none.npz", x=np.zeros((50, 0), np.float32), y=np.arange(50) % 2)
    _cli(["audit", "--dataset", str(tmp_path / "none.npz"), "--out", str(tmp_path / "out")], capsys, "no features")


def test_grid_counts_and_seeds_are_bounded_with_their_path():
    with pytest.raises(LimitError, match=r"grid.reference_models\[0\].*--limit models="):
        parse_experiment('[grid]\ndatasets = ["location30"]\nreference_models = [100000]\n')
    with pytest.raises(ConfigError, match=r"grid.seeds\[0\]"):
        parse_experiment('[grid]\ndatasets = ["location30"]\nseeds = [4294967296]\n')


@pytest.mark.parametrize("labels", [np.array(["cat", "dog"]), np.array([0, 10**9])], ids=["strings", "class 1e9"])
def test_skops_classifiers_with_any_labels_audit_from_npz_records(tmp_path, capsys, cache_env, labels):
    x, y = _records(200)
    named = labels[y]
    model = _skops_model(tmp_path / "m.skops", x[:100], named[:100])
    np.savez(tmp_path / "train.npz", x=x[:100], y=named[:100])
    np.savez(tmp_path / "test.npz", x=x[100:], y=named[100:])
    out = tmp_path / "out"
    argv = ["audit", "--model-file", str(model), "--train", str(tmp_path / "train.npz"), "--test", str(tmp_path / "test.npz")]
    assert main([*argv, "--attacks", "loss", "--out", str(out), "--no-report"]) == 0, capsys.readouterr().err
    assert json.loads((out / "results.json").read_text())["dataset"]["class_names"] == [str(v) for v in labels]


def test_a_skops_file_that_inflates_past_the_bound_is_refused_before_skops_reads_it(tmp_path):
    import zipfile

    from miaudit.limits import LimitError, use_limits
    from miaudit.targets.skops_files import read_skops

    path = tmp_path / "bomb.skops"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("schema.json", "{}")
        z.writestr("weights.npy", bytes(4 << 20))  # 4 MiB of zeros: a few KiB on disk
    assert path.stat().st_size < 64 << 10
    with use_limits(array_bytes=1 << 20), pytest.raises(LimitError, match="--limit array_bytes="):
        read_skops(path)


def test_a_sparse_npz_is_named_for_what_it_is_not_called_pickled(tmp_path):
    import scipy.sparse as sp

    from miaudit.bounded_io import read_npz
    from miaudit.errors import DataError

    sp.save_npz(tmp_path / "sparse.npz", sp.csr_matrix(np.eye(4)))
    with pytest.raises(DataError, match="scipy sparse matrix") as info:
        read_npz(tmp_path / "sparse.npz", "data file")
    assert "pickle" not in str(info.value)
