"""Benchmark the model downloader against the local fake hub (no network needed).

    .venv/bin/python tests/bench/bench_download.py [--mb 64]

Measures, within one run so the ratios are meaningful on a shared machine:
* throughput of ``download_model`` (HEADs + redirect + write + sha256 verification + rename) relative to a bare
  ``urllib`` read of the same CDN URL into a file (the floor for any client in Python);
* the cost of a resume after the connection drops half-way;
* cancel latency: time from ``cancel()`` turning true to ``Cancelled`` being raised while the server stalls.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for fakehub

from fakehub import FakeHub

from vitfeat_desktop.core.errors import Cancelled


def _encoder_bytes(size: int) -> bytes:
    """An ONNX graph of about ``size`` bytes that passes the downloader's image-encoder check.

    Random bytes no longer do: since issue 13 every downloaded graph is opened with ONNX Runtime before it is put
    in place. The graph reshapes ``pixel_values`` [N,3,H,W] into "hidden states" [N,3,H*W]; the bulk is one
    initializer of random floats that nothing reads (ONNX Runtime drops it after parsing, as it would a real
    model's unused weights), so the transfer and the sha256 see ``size`` bytes of noise as before.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    pixels = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["N", 3, 224, 224])
    hidden = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["N", 3, 224 * 224])
    shape = numpy_helper.from_array(np.array([0, 3, -1], dtype=np.int64), "shape")
    noise = np.frombuffer(os.urandom(max(4, size // 4 * 4)), dtype=np.float32)
    padding = numpy_helper.from_array(noise, "padding")
    graph = helper.make_graph([helper.make_node("Reshape", ["pixel_values", "shape"], ["last_hidden_state"])],
                              "bench", [pixels], [hidden], initializer=[shape, padding])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=64, help="size of the fake model file")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vitfeat-bench-dl-"))
    os.environ["VITFEAT_HOME"] = str(tmp / "home")
    from vitfeat_desktop.core.models import download
    from vitfeat_desktop.core.models.cache import remove_model
    from vitfeat_desktop.core.models.layout import cache_folder

    payload = _encoder_bytes(args.mb * 1_000_000)
    files = {"config.json": b'{"model_type": "vit"}', "preprocessor_config.json": b"{}",
             "onnx/model_quantized.onnx": payload}
    with FakeHub({"bench/model": files}) as server:
        os.environ["HF_ENDPOINT"] = server.endpoint

        def baseline() -> float:
            url = f"{server.endpoint}/bench/model/resolve/main/onnx/model_quantized.onnx"
            start = time.perf_counter()
            with urllib.request.urlopen(url) as resp, (tmp / "baseline.bin").open("wb") as fh:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    fh.write(block)
            return time.perf_counter() - start

        def ours() -> float:
            remove_model("bench/model") if cache_folder("bench/model").exists() else None
            start = time.perf_counter()
            download.download_model("bench/model", backoff=0.01)
            return time.perf_counter() - start

        base_t = min(baseline() for _ in range(args.repeat))
        our_t = min(ours() for _ in range(args.repeat))
        print(f"file: {args.mb} MB")
        print(f"bare urllib read to file : {base_t:.3f} s  ({args.mb / base_t:.0f} MB/s)")
        print(f"download_model (verified): {our_t:.3f} s  ({args.mb / our_t:.0f} MB/s)  ratio {our_t / base_t:.2f}x")

        remove_model("bench/model")
        server.add_fault("onnx/model_quantized.onnx", "drop", at=0.5)
        start = time.perf_counter()
        download.download_model("bench/model", backoff=0.01)
        resumed = time.perf_counter() - start
        print(f"with a drop at 50% + resume: {resumed:.3f} s  ratio {resumed / our_t:.2f}x of a clean download")

        latencies = []
        for _ in range(5):
            remove_model("bench/model")
            for part in cache_folder("bench/model").parent.rglob("*.part*"):
                part.unlink()
            fault = server.add_fault("onnx/model_quantized.onnx", "stall", at=0.3, delay=60)
            flag = threading.Event()
            fired: list[float] = []

            def trip(fault: object = fault, flag: threading.Event = flag, fired: list[float] = fired) -> None:
                fault.started.wait(30)  # type: ignore[attr-defined]
                time.sleep(0.3)
                fired.append(time.perf_counter())
                flag.set()

            threading.Thread(target=trip, daemon=True).start()
            try:
                download.download_model("bench/model", cancel=flag.is_set, backoff=0.01)
            except Cancelled:
                latencies.append(time.perf_counter() - fired[0])
        print(f"cancel latency while the server stalls: max {max(latencies) * 1000:.0f} ms, "
              f"median {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms over {len(latencies)} runs")


if __name__ == "__main__":
    main()
