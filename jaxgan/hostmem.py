"""Host memory allocation for XLA:CPU steps: glibc's defaults, or keep freed memory.

XLA:CPU allocates one temporary buffer per execution of a compiled program and frees it
when the execution ends (about 0.9 GB for the configs/dcgan128.py step at batch 32). glibc's
malloc serves every block above 32 MiB with a fresh `mmap` and returns it with `munmap`,
so each step page-faults its whole working set again (about 300,000 minor faults per
dcgan128 step in 4 KiB pages). That is the default, with glibc's huge-page tunable where the
kernel offers it (`hugepage_env`, below): on the development machine that ran faster than
keeping freed memory (radford64 at batch 64, alternating processes: 1.26-1.28 against 1.33
s/step; without the tunable keeping was 3-6% faster on radford64/32), at half the resident
peak for dcgan128 (2.0 against 2.9-3.9 GiB; docs/performance.md).

`keep_freed_memory()` (JAXGAN_MALLOC=keep) changes three glibc malloc settings (`mallopt`):
  - M_ARENA_MAX=1: all threads allocate from the main heap. A worker thread's own arena
    cannot hold a block larger than 64 MiB and falls back to `mmap` for it.
  - M_MMAP_MAX=0: no block is served by `mmap`.
  - M_TRIM_THRESHOLD=max: freed memory at the top of the heap is never returned.
The second step then reuses the first step's pages: 0 page faults per step once the heap
has grown. Cost: the process keeps its peak memory until it exits, and the heap can hold
two or three temporaries where they landed apart, so the resident peak is higher (about
twice glibc's defaults for dcgan128), and the steps that grow the heap are slow. What each
setting measured, on which machine: docs/performance.md.

`release_free()` hands the heap's free pages back to the system (glibc's `malloc_trim`).
The entry points call it after each compilation, whose temporaries otherwise stay resident
under either setting (about 300 MiB for dcgan128), and `release_init_programs()` once the
state is created: it also drops the programs the eager init compiled, which JAX keeps
cached (another 300 MiB for dcgan128; docs/performance.md).

The setting must be made before JAX creates its CPU client's threads (the first
computation or `jax.devices()` call): threads that already have their own arena keep it.
The entry points (`jaxgan.main`, `jaxgan.benchmark`) call `configure()` before importing
JAX; in a notebook, call `jaxgan.hostmem.configure("keep")` first to keep freed memory.
The environment variable JAXGAN_MALLOC selects:
  system (default) glibc's defaults; `jaxgan.main` and `jaxgan.benchmark` restart
         themselves once with glibc's transparent-huge-page tunable where it helps
         (`hugepage_env`): the per-step page faults then cost little;
  keep   keep freed memory;
  auto   keep freed memory when JAX will run on the CPU: JAX_PLATFORMS is unset or starts
         with 'cpu', and no GPU/TPU plugin of JAX is installed (the default before
         2026-12-03).
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import platform
import sys

ENV_VAR = "JAXGAN_MALLOC"
MODES = ("system", "keep", "auto")

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_ACCELERATOR_DISTRIBUTIONS = ("jax-cuda", "jax_cuda", "jax-rocm", "jax_rocm", "libtpu")


def _accelerator_expected() -> bool:
  platforms = os.environ.get("JAX_PLATFORMS", "").strip().lower()
  if platforms:
    return not platforms.startswith("cpu")
  for dist in importlib.metadata.distributions():
    name = (dist.metadata["Name"] or "").lower()
    if name.startswith(_ACCELERATOR_DISTRIBUTIONS):
      return True
  return False


def _jax_backend_started() -> bool:
  if "jax" not in sys.modules:
    return False
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
    return bool(xla_bridge.backends_are_initialized())
  except (ImportError, AttributeError):
    return True  # cannot tell: assume the threads exist


def keep_freed_memory() -> str:
  """Applies the three mallopt settings of the module docstring; returns what was done.

  Returns a one-line description; does nothing (and says why) where glibc is not the C
  library or JAX's backend has already started its threads.
  """
  if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
    return "system allocator (not glibc; nothing to tune)"
  if _jax_backend_started():
    return ("system allocator (JAX's backend had already started; call "
            "jaxgan.hostmem.configure('keep') before the first JAX computation)")
  libc = ctypes.CDLL("libc.so.6")
  ok = [libc.mallopt(_M_ARENA_MAX, 1), libc.mallopt(_M_MMAP_MAX, 0),
        libc.mallopt(_M_TRIM_THRESHOLD, -1)]  # -1 converts to SIZE_MAX: never trim
  if not all(ok):
    return f"system allocator (mallopt refused: {ok})"
  return (f"glibc malloc keeps freed memory (one arena, no mmap, no trim; "
          f"{ENV_VAR}=system turns it off)")


def _resident_mib() -> float | None:
  try:
    with open("/proc/self/statm") as f:
      return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
  except (OSError, ValueError, IndexError):
    return None


def release_free() -> float | None:
  """Returns the heap's free pages to the system (glibc `malloc_trim(0)`); the MiB of
  resident memory it released, or None where it cannot (not glibc, or no /proc)."""
  if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
    return None
  before = _resident_mib()
  ctypes.CDLL("libc.so.6").malloc_trim(0)
  after = _resident_mib()
  return None if before is None or after is None else max(0.0, before - after)


def release_init_programs() -> float | None:
  """`release_free` after dropping JAX's cached programs (`jax.clear_caches`): creating a
  state eagerly compiles one small program per init op, and their executables stay in
  JAX's caches (about 300 MiB for dcgan128, docs/performance.md). Call it once the state
  exists, before compiling the step; returns what `release_free` returns."""
  import gc  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top (this module loads before JAX)
  jax.clear_caches()
  gc.collect()
  return release_free()


HUGETLB = "glibc.malloc.hugetlb"
_THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"


def _glibc_version() -> tuple[int, ...]:
  if platform.system() != "Linux":
    return ()
  lib, version = platform.libc_ver()
  try:
    return tuple(int(v) for v in version.split(".")) if lib == "glibc" else ()
  except ValueError:
    return ()


def hugepage_env(environ=None) -> dict | None:
  """The environment to re-execute with for transparent huge pages in glibc's malloc
  (GLIBC_TUNABLES gains glibc.malloc.hugetlb=1), or None where it would change nothing:
  not glibc 2.35 or later, transparent huge pages not in 'madvise' mode (with 'always' the
  kernel uses them anyway, with 'never' not at all), an accelerator run, or the tunable
  already set (GLIBC_TUNABLES=glibc.malloc.hugetlb=0 opts out).

  glibc reads its tunables only when a process starts, so they cannot be set from Python.
  With it, the step's temporaries are faulted in 2 MiB pages: radford64 at batch 64 675
  faults per step instead of 105,000 and 1.26-1.28 instead of 1.38-1.40 s/step; dcgan128
  6.2-6.5 instead of 6.8 s (docs/performance.md)."""
  environ = os.environ if environ is None else environ
  tunables = environ.get("GLIBC_TUNABLES", "")
  if _glibc_version() < (2, 35) or HUGETLB in tunables or _accelerator_expected():
    return None
  try:
    with open(_THP_ENABLED) as f:
      if "[madvise]" not in f.read():
        return None
  except OSError:
    return None
  value = f"{HUGETLB}=1"
  return dict(environ, GLIBC_TUNABLES=f"{tunables}:{value}" if tunables else value)


def _reexec_with(env: dict) -> None:
  """Replaces this process by the same command line with `env` (never returns)."""
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def configure(mode: str | None = None, reexec: bool = False) -> str:
  """Applies `mode` (default: $JAXGAN_MALLOC or 'system'); returns a line for the log.

  With `reexec` (the entry points' `__main__` only: it restarts the whole command), the
  'system' mode first re-executes the process with glibc's huge-page tunable where
  `hugepage_env` says it helps."""
  given = (mode or os.environ.get(ENV_VAR) or "").strip().lower()
  mode = given or "system"
  if mode not in MODES:
    raise ValueError(f"{ENV_VAR}={mode!r}: expected one of {', '.join(MODES)}")
  if mode == "system":
    env = hugepage_env() if reexec and getattr(sys, "orig_argv", None) else None
    if env is not None:
      _reexec_with(env)
    pages = (f", transparent huge pages ({HUGETLB}=1)"
             if f"{HUGETLB}=1" in os.environ.get("GLIBC_TUNABLES", "") else "")
    return (f"system allocator ({ENV_VAR}=system{pages})" if given else
            f"system allocator (glibc's defaults{pages}; {ENV_VAR}=keep keeps freed memory)")
  if mode == "auto" and _accelerator_expected():
    return "system allocator (JAX will run on an accelerator)"
  return keep_freed_memory()
