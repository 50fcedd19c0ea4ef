"""A fake ``nvidia-smi`` executable for tests on machines without a GPU: a small shell script
put first on PATH that prints what the real one prints for the queries the harness makes
(``--query-gpu=...``, ``--query-compute-apps=...``, and the banner with the CUDA version)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Mapping, Sequence

#: (name, memory MiB) of real nvidia-smi names, as printed by the driver.
H100_SXM = ("NVIDIA H100 80GB HBM3", 81559)
H200 = ("NVIDIA H200", 143771)
A100_SXM = ("NVIDIA A100-SXM4-80GB", 81920)
L40 = ("NVIDIA L40", 46068)
L40S = ("NVIDIA L40S", 46068)

BANNER = """Tue Mar 12 10:00:00 2024
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI {driver}              Driver Version: {driver}      CUDA Version: {cuda}     |
|-----------------------------------------+------------------------+----------------------+
"""


def install(directory: Path, gpus: Sequence[tuple[str, int]], driver: str = "550.54.15", cuda: str = "12.4",
            apps: Mapping[int, int] | None = None) -> Path:
    """Write ``directory/nvidia-smi`` listing ``gpus`` (index order) and, for
    ``--query-compute-apps``, the processes ``apps`` (pid -> MiB used); returns the directory, to
    be put first on PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"{i}, GPU-{i:08d}-aaaa-bbbb-cccc-{i:012d}, {name}, {driver}, {mib} MiB"
                     for i, (name, mib) in enumerate(gpus))
    procs = "\n".join(f"{pid}, {mib}" for pid, mib in (apps or {}).items())
    script = f"""#!/bin/sh
case "$*" in
  *--query-gpu=*) cat <<'EOF'
{rows}
EOF
  ;;
  *--query-compute-apps=*) cat <<'EOF'
{procs}
EOF
  ;;
  "") cat <<'EOF'
{BANNER.format(driver=driver, cuda=cuda)}
EOF
  ;;
  *) echo "fake nvidia-smi: unexpected arguments $*" >&2; exit 2 ;;
esac
"""
    path = directory / "nvidia-smi"
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return directory


def on_path(monkeypatch, directory: Path) -> None:
    """Put ``directory`` first on PATH for this test (and the subprocesses it starts)."""
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")


def without_nvidia_smi(monkeypatch, tmp_path: Path) -> None:
    """A PATH on which no ``nvidia-smi`` is found (a real one, if any, is hidden)."""
    empty = tmp_path / "no-nvidia-smi"
    empty.mkdir(exist_ok=True)
    (empty / "nvidia-smi").write_text("#!/bin/sh\nexit 127\n")
    (empty / "nvidia-smi").chmod(0o755)
    on_path(monkeypatch, empty)
