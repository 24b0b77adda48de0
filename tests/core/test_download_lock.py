"""Two processes downloading the same model at once: one fetches, the other waits and finds it cached."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from fakehub import FakeHub

from vitfeat_desktop.core.models.layout import cache_folder

REPO = "Xenova/tiny-vit"
INT8 = "onnx/model_quantized.onnx"

SCRIPT = """
import sys
from vitfeat_desktop.core.models.download import download_model
r = download_model(sys.argv[1], backoff=0.01)
print("cached" if r.already_cached else "fetched", r.bytes_fetched)
"""


def test_two_processes_do_not_corrupt_each_other(tiny_vit: Path, vitfeat_home: Path) -> None:
    with FakeHub({REPO: tiny_vit}) as server:
        # slow enough (about a second) that the second process starts while the first is still downloading
        server.add_fault(INT8, "slow", rate=100_000, times=None)
        env = {**os.environ, "HF_ENDPOINT": server.endpoint, "VITFEAT_HOME": str(vitfeat_home)}
        procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, REPO], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [p.communicate(timeout=60) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        words = sorted(out.split()[0] for out, _ in outputs)
        assert words == ["cached", "fetched"], outputs
        assert server.count("GET", INT8, "cdn") == 1  # fetched once, not twice into the same part file
    folder = cache_folder(REPO)
    assert hashlib.sha256((folder / INT8).read_bytes()).digest() == hashlib.sha256(
        (tiny_vit / INT8).read_bytes()).digest()
    assert not list(folder.rglob("*.part*"))
