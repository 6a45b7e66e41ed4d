"""What every bench records and how it writes its results: the machine, the JSON, the plot."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def machine(device: str | None = None, libs: Sequence[str] = ()) -> dict[str, Any]:
    """CPU, OS, Python, the versions of `libs`, the load average at the start; with `device`,
    also torch's version and threads, the device and the GPU's name."""
    cpu = ""
    if Path("/proc/cpuinfo").is_file():
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    for lib in libs:
        try:
            info[lib] = version(lib)
        except PackageNotFoundError:
            info[lib] = None
    if device is not None:
        import torch

        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(), device=device)
        info["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return info


def rss_mb(field: str = "VmRSS") -> float:
    """This process's memory in MB from /proc/self/status: `VmRSS` now, `VmHWM` its peak (unlike
    `getrusage`'s ru_maxrss, the peak does not carry over a parent's across `execve`); 0 elsewhere."""
    status = Path("/proc/self/status")
    for line in status.read_text().splitlines() if status.is_file() else []:
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def write_json(result: dict[str, Any], out: Path) -> None:
    """`result` as JSON at `out`, with no absolute path of this machine in it: paths become relative
    to the checkout, `../shared/data/...`, `~/...` or `$TMPDIR/...` (`mmrag.evals.portable_paths`).
    A result without a `date` gets today's (`YYYY-MM-DD`): the docs' tables show it
    (`bench/tables.py`)."""
    from mmrag.evals import write_json as write

    write(out, result if "date" in result else {"date": time.strftime("%Y-%m-%d"), **result})


def write_result(result: dict[str, Any], out: Path, plot: Callable[[dict[str, Any], Path], None]) -> None:
    """`result` as JSON at `out` (`write_json`), and its plot beside it (`.png`)."""
    write_json(result, out)
    try:
        plot(result, out.with_suffix(".png"))
    except ImportError:
        print("matplotlib missing: no plot (pip install matplotlib)", file=sys.stderr)
