"""The Android demo's model contract and preprocessing, checked against the pipeline.

No Android SDK runs here, so this checks what the app depends on: the keys and asset names
its Kotlin reads exist in a real export (``ModelMetadata.kt``), and its preprocessing
(``android_demo/PREPROCESSING.md``, implemented below in NumPy and in ``Preprocessing.kt``)
turns a canvas holding a real MNIST test digit into exactly ``pipeline.data.normalize`` of
that digit, so the exported model predicts the same classes in the app as in the pipeline.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import pipeline  # noqa: F401  (Keras 2 before TensorFlow)
from pipeline import data, runs
from pipeline.export import exporter as export

ANDROID = Path(__file__).resolve().parents[2] / "android_demo"
KOTLIN = ANDROID / "app" / "src" / "main" / "java" / "org" / "bitlite" / "demo"

# -- what the Kotlin reads -----------------------------------------------------------------


def kotlin_const(name: str) -> str:
    match = re.search(rf'const val {name} = "([^"]+)"', (KOTLIN / "ModelMetadata.kt").read_text())
    assert match, f"ModelMetadata.kt has no const {name}"
    return match.group(1)


def kotlin_keys(receiver: str) -> set[str]:
    """JSON keys ModelMetadata.kt reads from ``receiver`` (``root`` or ``normalization``),
    required (``get*``) or optional (``opt*``)."""
    source = (KOTLIN / "ModelMetadata.kt").read_text()
    return set(re.findall(rf'{receiver}\.(?:get|opt)\w*\("(\w+)"', source))


# -- the app's preprocessing (PREPROCESSING.md), in NumPy ---------------------------------


def argb(r: np.ndarray, g: np.ndarray, b: np.ndarray, a: np.ndarray | int = 255) -> np.ndarray:
    """Pack 8-bit channels into Android's 0xAARRGGBB ints (as uint32)."""
    a = np.broadcast_to(np.asarray(a, np.uint32), np.shape(r))
    r, g, b = (np.asarray(c, np.uint32) for c in (r, g, b))
    return (a << 24) | (r << 16) | (g << 8) | b


def overlaps(src: int, dst: int) -> np.ndarray:
    """(dst, src) overlap lengths of output and source cells, in units of 1/(src*dst)."""
    x = np.arange(dst, dtype=np.int64)[:, None]
    i = np.arange(src, dtype=np.int64)[None, :]
    hi = np.minimum((x + 1) * src, (i + 1) * dst)
    lo = np.maximum(x * src, i * dst)
    return np.maximum(hi - lo, 0)


def app_pixels(image: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """ARGB image (h, w) -> the model's uint8 pixels (H, W, C), steps 1-5 of the spec."""
    H, W, C = shape
    px = image.astype(np.int64)
    a = (px >> 24) & 0xFF
    rgb = [((px >> s) & 0xFF) * a + 255 * (255 - a) + 127 for s in (16, 8, 0)]
    r, g, b = (c // 255 for c in rgb)  # 1. alpha over white
    planes = [(299 * r + 587 * g + 114 * b + 500) // 1000] if C == 1 else [r, g, b]  # 2.
    h, w = image.shape
    if w * H > h * W:  # 3. centre crop to W:H
        cw, ch = h * W // H, h
        x0, y0 = (w - cw) // 2, 0
    else:
        cw, ch = w, w * H // W
        x0, y0 = 0, (h - ch) // 2
    # 4. area resize. float64 products are exact here (every partial sum is an integer
    # below 255 * cw * ch << 2**53) and let BLAS do the work.
    ox, oy = overlaps(cw, W).astype(np.float64), overlaps(ch, H).astype(np.float64)
    d = cw * ch
    sums = [(oy @ p[y0 : y0 + ch, x0 : x0 + cw] @ ox.T).astype(np.int64) for p in planes]
    out = np.stack([(s + d // 2) // d for s in sums], axis=-1)
    if C == 1:  # 5. polarity
        ring = np.concatenate([out[0, :, 0], out[-1, :, 0], out[1:-1, 0, 0], out[1:-1, -1, 0]])
        if 2 * ring.sum() > 255 * ring.size:
            out = 255 - out
    return out.astype(np.uint8)


def app_tensor(image: np.ndarray, meta: dict) -> np.ndarray:
    """Step 6: the float32 tensor the app feeds the interpreter (without the batch axis)."""
    pixels = app_pixels(image, tuple(meta["input_shape"]))
    norm = meta["normalization"]
    return pixels.astype(np.float32) * np.float32(norm["scale"]) + np.float32(norm["offset"])


# -- canvases holding MNIST digits ------------------------------------------------------


def chalkboard(digit: np.ndarray, factor: int = 10) -> np.ndarray:
    """What the app's canvas holds when a digit is drawn on it: white on black, enlarged."""
    big = np.kron(digit[..., 0], np.ones((factor, factor), np.uint8))
    return argb(big, big, big)


def paper_photo(digit: np.ndarray, factor: int = 10, margin: int = 10) -> np.ndarray:
    """A wide photo of the digit as dark ink on white paper (the picker's typical input)."""
    big = 255 - np.kron(digit[..., 0], np.ones((factor, factor), np.uint8))
    big = np.pad(big, ((0, 0), (margin, margin)), constant_values=255)
    return argb(big, big, big)


def phone_canvas(digit: np.ndarray, side: int = 1000) -> np.ndarray:
    """The digit on a phone-sized canvas: each MNIST pixel a 35.7-pixel square (sharp edges)."""
    index = np.arange(side) * digit.shape[0] // side
    big = digit[index][:, index, 0]
    return argb(big, big, big)


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(exported_run: tuple[runs.Run, dict]) -> runs.Run:
    return exported_run[0]


@pytest.fixture(scope="module")
def meta(exported: runs.Run) -> dict:
    return json.loads(exported.file(export.MODEL_JSON).read_text())


@pytest.fixture(scope="module")
def digits(mnist_small) -> np.ndarray:
    return mnist_small.x_test[:100]


# -- the contract ------------------------------------------------------------------------


def test_metadata_has_what_the_app_reads(meta: dict, exported: runs.Run) -> None:
    assert kotlin_keys("root") <= set(meta), kotlin_keys("root") - set(meta)
    assert kotlin_keys("normalization") == set(meta["normalization"]) == {"scale", "offset"}
    assert meta["format"] == kotlin_const("FORMAT")
    assert meta["input_dtype"] == "float32" and meta["output"] == "probabilities"
    assert meta["input_shape"] == [28, 28, 1]
    assert meta["labels"] == [str(d) for d in range(10)]
    pixel = {"scale": data.base.PIXEL_SCALE, "offset": data.base.PIXEL_OFFSET}
    assert meta["normalization"] == pixel
    # A BNN export has LCE's bitpacked convolution: the app adds bitlite's delegate for it.
    assert meta["needs_lce"] is True and meta["needs_bitlite_runtime"] is False
    assert b"LceBconv2d" in exported.file(runs.TFLITE).read_bytes()


def test_tflite_tensors_match_the_metadata(meta: dict, exported: runs.Run) -> None:
    """What Classifier.kt checks on the device: input [1, H, W, C] and output [1, labels]."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    interpreter = Interpreter(exported.file(runs.TFLITE).read_bytes())
    assert [tuple(s) for s in interpreter.input_shapes] == [(1, *meta["input_shape"])]
    assert [np.dtype(t) for t in interpreter.input_types] == [np.float32]
    assert [tuple(s) for s in interpreter.output_shapes] == [(1, len(meta["labels"]))]


def test_export_bundles_the_model_under_the_app_asset_names(
    exported: runs.Run, tmp_path: Path
) -> None:
    app = tmp_path / "android_demo"
    (app / "app" / "src" / "main").mkdir(parents=True)
    shutil.copy(ANDROID / "app" / "src" / "main" / "AndroidManifest.xml", app / "app/src/main")
    export.copy_to_android(exported, export.android_assets(app))
    assets = app / "app" / "src" / "main" / "assets"
    assert sorted(p.name for p in assets.iterdir()) == sorted(
        [kotlin_const("MODEL_ASSET"), kotlin_const("METADATA_ASSET")]
    )
    model = (assets / kotlin_const("MODEL_ASSET")).read_bytes()
    assert model == exported.file(runs.TFLITE).read_bytes()
    sidecar = json.loads((assets / kotlin_const("METADATA_ASSET")).read_text())
    assert sidecar == json.loads(exported.file(export.MODEL_JSON).read_text())


def test_export_refuses_a_directory_that_is_not_the_app(tmp_path: Path) -> None:
    from pipeline.errors import UsageError

    with pytest.raises(UsageError, match="not the Android demo project"):
        export.android_assets(tmp_path)


# -- the preprocessing -------------------------------------------------------------------


def test_drawn_digit_becomes_exactly_the_pipeline_input(digits: np.ndarray, meta: dict) -> None:
    expected = data.normalize(digits)
    got = np.stack([app_tensor(chalkboard(d), meta) for d in digits])
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_ink_on_paper_photo_is_cropped_and_inverted(digits: np.ndarray, meta: dict) -> None:
    got = np.stack([app_tensor(paper_photo(d), meta) for d in digits])
    np.testing.assert_array_equal(got, data.normalize(digits))


def test_transparent_background_counts_as_paper(digits: np.ndarray, meta: dict) -> None:
    digit = digits[0][..., 0]
    ink = np.zeros_like(digit)
    image = argb(ink, ink, ink, a=digit)  # black ink whose opacity is the digit
    np.testing.assert_array_equal(app_tensor(image, meta), data.normalize(digits[:1])[0])


def test_area_resize_splits_cells_by_overlap() -> None:
    # 3 pixels onto 2: the middle pixel is shared half and half, (2*0+90)/3 and (90+2*180)/3.
    row = np.array([[0, 90, 180]] * 3, np.uint8)
    image = argb(row, row, row)
    assert app_pixels(image, (1, 2, 1))[0, :, 0].tolist() == [30, 150]


def test_phone_sized_canvas_comes_back_close(digits: np.ndarray, meta: dict) -> None:
    """A 1000-pixel canvas is not a multiple of 28: cells straddling two MNIST pixels blend
    them, and nothing else changes (a half-pixel shift would move whole stroke edges)."""
    got = np.stack([app_tensor(phone_canvas(d), meta) for d in digits[:10]])
    diff = np.abs(got - data.normalize(digits[:10]))
    assert diff.max() <= 12 * data.base.PIXEL_SCALE + 1e-6  # at most 12 grey levels
    assert diff.mean() < 0.01


def test_app_predicts_what_the_pipeline_predicts(
    digits: np.ndarray, meta: dict, exported: runs.Run
) -> None:
    flatbuffer = exported.file(runs.TFLITE).read_bytes()
    reference = export.lce_predict(flatbuffer, data.normalize(digits))
    drawn = np.stack([app_tensor(chalkboard(d), meta) for d in digits])
    np.testing.assert_array_equal(export.lce_predict(flatbuffer, drawn), reference)


def test_kotlin_preprocessing_matches_the_spec(
    digits: np.ndarray, meta: dict, tmp_path: Path, kotlin_build
) -> None:
    """Preprocessing.kt itself, compiled and run on the same canvases as the NumPy spec."""
    cases = {
        "chalkboard": np.stack([chalkboard(d) for d in digits[:10]]),
        "paper": np.stack([paper_photo(d) for d in digits[:10]]),
        "phone": np.stack([phone_canvas(d, side=333) for d in digits[:4]]),
        "tall": np.stack([paper_photo(d).T.copy() for d in digits[:4]]),
    }
    H, W, C = meta["input_shape"]
    norm = meta["normalization"]
    args = []
    for name, images in cases.items():
        n, h, w = images.shape
        header = np.array([n, w, h, H, W, C], "<i4").tobytes()
        (tmp_path / f"{name}.in").write_bytes(header + images.astype("<u4").tobytes())
        args += [str(tmp_path / f"{name}.in"), str(tmp_path / f"{name}.out")]
    kotlin_build.java("PreprocessingMainKt", repr(norm["scale"]), repr(norm["offset"]), *args)
    for name, images in cases.items():
        kotlin = np.fromfile(tmp_path / f"{name}.out", "<f4").reshape(len(images), H, W, C)
        spec = np.stack([app_tensor(image, meta) for image in images])
        np.testing.assert_array_equal(kotlin, spec, err_msg=name)
