"""Person detectors: YOLOX pre/post-processing on an ONNX model with the real signature, HOG, auto, download."""

from __future__ import annotations

import functools
import http.server
import logging
import threading
import zipfile

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pose_server import detect
from pose_server.detect import make_detector
from pose_server.detect.download import ModelFileMissing, fetch
from pose_server.detect.yolox import YoloxDetector, model_path

from .conftest import ROOT


def bright_box_yolox(path, size: int = 416) -> None:
    """An end2end-YOLOX-shaped model (input (1,3,S,S) -> dets (1,3,5), labels (1,3)) that 'detects' the box
    around pixels brighter than 200 in every channel as a person (score 0.9), plus a fixed non-person box
    (label 1, score 0.95) and a fixed low-score person (0.1) that the post-processing must drop."""
    i64 = TensorProto.INT64
    nodes = [
        helper.make_node("ReduceMin", ["input"], ["gray"], axes=[1], keepdims=0),  # (1,S,S)
        helper.make_node("Constant", [], ["thr"], value=helper.make_tensor("t", TensorProto.FLOAT, [], [200.0])),
        helper.make_node("Greater", ["gray", "thr"], ["mask_b"]),
        helper.make_node("Cast", ["mask_b"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["mask"], ["cols"], axes=[1], keepdims=0),  # (1,S) any bright pixel in column
        helper.make_node("ReduceMax", ["mask"], ["rows"], axes=[2], keepdims=0),  # (1,S)
        helper.make_node("Constant", [], ["st"], value=helper.make_tensor("s", i64, [1], [-1])),
        helper.make_node("Constant", [], ["en"], value=helper.make_tensor("e", i64, [1], [-(2**62)])),
        helper.make_node("Constant", [], ["ax"], value=helper.make_tensor("a", i64, [1], [1])),
        helper.make_node("Slice", ["cols", "st", "en", "ax", "st"], ["cols_r"]),
        helper.make_node("Slice", ["rows", "st", "en", "ax", "st"], ["rows_r"]),
        helper.make_node("ArgMax", ["cols"], ["x1i"], axis=1, keepdims=1),
        helper.make_node("ArgMax", ["rows"], ["y1i"], axis=1, keepdims=1),
        helper.make_node("ArgMax", ["cols_r"], ["x2r"], axis=1, keepdims=1),
        helper.make_node("ArgMax", ["rows_r"], ["y2r"], axis=1, keepdims=1),
        helper.make_node("Constant", [], ["last"], value=helper.make_tensor("l", i64, [], [size - 1])),
        helper.make_node("Sub", ["last", "x2r"], ["x2i"]),
        helper.make_node("Sub", ["last", "y2r"], ["y2i"]),
        helper.make_node("Concat", ["x1i", "y1i", "x2i", "y2i"], ["xyxy_i"], axis=1),
        helper.make_node("Cast", ["xyxy_i"], ["xyxy"], to=TensorProto.FLOAT),  # (1,4)
        helper.make_node("Constant", [], ["score"], value=helper.make_tensor("sc", TensorProto.FLOAT, [1, 1], [0.9])),
        helper.make_node("Concat", ["xyxy", "score"], ["det"], axis=1),  # (1,5)
        helper.make_node("Constant", [], ["others"], value=helper.make_tensor(
            "o", TensorProto.FLOAT, [2, 5], [10, 10, 50, 50, 0.95, 100, 100, 200, 200, 0.1])),
        helper.make_node("Concat", ["det", "others"], ["dets2"], axis=0),  # (3,5)
        helper.make_node("Unsqueeze", ["dets2", "zero"], ["dets"]),
        helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("z", i64, [1], [0])),
        helper.make_node("Constant", [], ["labels"], value=helper.make_tensor("lb", i64, [1, 3], [0, 1, 0])),
    ]
    # Constants first so the graph is topologically sorted.
    nodes.sort(key=lambda n: n.op_type != "Constant")
    graph = helper.make_graph(
        nodes, "bright_box",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, 3, 5]),
         helper.make_tensor_value_info("labels", i64, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def yolox_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("det") / "end2end.onnx"
    bright_box_yolox(path)
    return path


@pytest.mark.parametrize("size", [(640, 360), (300, 500)])
def test_yolox_letterbox_and_rescale(yolox_file, size):
    w, h = size
    frame = np.full((h, w, 3), 60, np.uint8)
    x1, y1, x2, y2 = int(w * 0.3), int(h * 0.2), int(w * 0.6), int(h * 0.9)
    cv2.rectangle(frame, (x1, y1), (x2, y2), (255, 255, 255), -1)
    det = YoloxDetector(yolox_file, score_threshold=0.3)
    blob, ratio = det.preprocess(frame)
    assert blob.shape == (1, 3, 416, 416) and blob.dtype == np.float32
    assert ratio == pytest.approx(min(416 / h, 416 / w))
    assert blob[0, :, -1, -1].tolist() == [114, 114, 114]  # padding is grey, bottom-right
    boxes, scores = det(frame)
    # The non-person (label 1) and the 0.1-score person are dropped; the bright box comes back in frame pixels.
    assert boxes.shape == (1, 4) and scores.tolist() == pytest.approx([0.9])
    np.testing.assert_allclose(boxes[0], [x1, y1, x2, y2], atol=2.5 / ratio)


def test_yolox_rejects_other_signatures(tmp_path):
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["out"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ValueError, match="not an end-to-end YOLOX"):
        YoloxDetector(path)


def test_hog_finds_a_person_in_the_demo_clip():
    ok, frame = cv2.VideoCapture(str(ROOT / "resources/videos/default.mp4")).read()
    assert ok
    boxes, scores = make_detector("hog")(frame)
    assert len(boxes) >= 1 and ((scores > 0) & (scores < 1)).all()
    w, h = boxes[0, 2] - boxes[0, 0], boxes[0, 3] - boxes[0, 1]
    assert h > w > 20  # upright person-shaped


def test_auto_uses_the_cnn_when_present_else_hog_once(tmp_path, monkeypatch, caplog, yolox_file):
    monkeypatch.setenv("VITPOSE_CHECKPOINTS", str(tmp_path))
    monkeypatch.setattr(detect, "_warned", False)
    caplog.set_level(logging.WARNING, logger="pose_server.detect")
    assert make_detector("auto").name == "hog"
    assert make_detector("auto").name == "hog"
    assert sum("HOG" in r.getMessage() for r in caplog.records) == 1
    model_path().parent.mkdir(parents=True)
    model_path().write_bytes(yolox_file.read_bytes())
    assert make_detector("auto").name == "yolox"
    assert make_detector("full-frame")(np.zeros((10, 20, 3), np.uint8))[0].tolist() == [[0, 0, 19, 9]]
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("nope")


def test_download_from_a_server_and_the_offline_error(tmp_path, yolox_file):
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "det.zip", "w") as zf:
        zf.write(yolox_file, "yolox_nano/end2end.onnx")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        dest = tmp_path / "checkpoints" / "detectors" / "det.onnx"
        got = fetch(f"http://127.0.0.1:{httpd.server_port}/det.zip", dest)
        assert got == dest and dest.read_bytes() == yolox_file.read_bytes()
    finally:
        httpd.shutdown()
        httpd.server_close()
    # No network (nothing listens there): the error names the file to place by hand.
    missing = tmp_path / "checkpoints" / "detectors" / "other.onnx"
    with pytest.raises(ModelFileMissing, match=str(missing)):
        fetch(f"http://127.0.0.1:{httpd.server_port}/det.zip", missing, timeout=2)
    assert not missing.exists() and not list(missing.parent.glob("*.part"))
