"""One .tflite model on LiteRT (``ai-edge-litert``, the TensorFlow Lite runtime without TensorFlow)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from pose_server.blazepose.files import FETCH_COMMAND, EmbeddedModelError


class TfliteModel:
    """A LiteRT interpreter for a single-input model: ``outputs = model(x)``, outputs in the model's order."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            # One thread unless asked: on the 2-core machine the landmark model took the same CPU time per frame
            # (20.0 vs 20.4 ms) with 1 or 2 threads, so a second thread only takes a core from decoding and lifting.
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads or 1)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise EmbeddedModelError(f"cannot read the model file {path} ({exc}); delete it and fetch it again "
                                     f"with: {FETCH_COMMAND}") from None
        self.path = Path(path)
        inp = self.interpreter.get_input_details()[0]
        self.input_index = inp["index"]
        self.input_shape = tuple(int(v) for v in inp["shape"])  # (1, H, W, 3)
        self.output_indices = [d["index"] for d in self.interpreter.get_output_details()]
        # One interpreter is not safe to run from two threads at once, and the pipeline may: an urgent detection
        # in the inference thread while the periodic one still runs in the background.
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            self.interpreter.set_tensor(self.input_index, np.ascontiguousarray(x, dtype=np.float32))
            self.interpreter.invoke()
            return [self.interpreter.get_tensor(i).copy() for i in self.output_indices]
