"""What the benchmarks print about the machine they ran on (no TensorFlow here)."""
from __future__ import annotations

import os

SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


def cpu_flags() -> tuple[str, set]:
    """(CPU model name, its feature flags) from /proc/cpuinfo; ("unknown", empty) elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return "unknown (no /proc/cpuinfo)", set()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    words = set(next((line.split(":", 1)[1].split() for line in info.splitlines()
                      if line.startswith(("flags", "Features"))), []))
    return model, words


def cpu_simd() -> str:
    """The SIMD features int8 and float32 kernels can use."""
    model, words = cpu_flags()
    have = [flag for flag in SIMD_FLAGS if flag in words]
    missing = [flag for flag in SIMD_FLAGS if flag not in words]
    return f"{model}; has {' '.join(have) or 'none of them'}; lacks {' '.join(missing) or 'nothing'}"


def has_vnni() -> bool:
    return bool(set(VNNI_FLAGS) & cpu_flags()[1])


def load_line(before: tuple[float, float, float]) -> str:
    """Cores and the load average before and now: the machine may be shared."""
    now = os.getloadavg()
    return (f"cores {len(os.sched_getaffinity(0))}, load average (1/5/15 min) before "
            f"{' / '.join(f'{x:.2f}' for x in before)}, after {' / '.join(f'{x:.2f}' for x in now)}")
