"""jaxgan.hostmem: the default setting (glibc's defaults), keep mode (freed temporaries
kept: no page faults on repeated executions), huge pages by restart, the heap's releases."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from jaxgan import hostmem

ROOT = Path(__file__).resolve().parents[1]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# A program whose temporary (the 4096 x 16384 float32 product, 256 MiB) is allocated and
# freed by XLA on every call; prints the mode's description, then minor page faults per call.
_PROGRAM = """
import resource, sys
from jaxgan import hostmem
print(hostmem.configure(sys.argv[1]))
import jax, jax.numpy as jnp
f = jax.jit(lambda a, b: (jnp.tanh(a @ b) @ b.T).sum())
a, b = jnp.ones((4096, 64)), jnp.ones((64, 16384))
for _ in range(2):
  f(a, b).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
  f(a, b).block_until_ready()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
"""


def _run(*args, env=None):
  proc = subprocess.run([sys.executable, "-c", *args], cwd=ROOT, capture_output=True, text=True,
                        timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout.strip().splitlines()


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_keeping_freed_memory_stops_the_per_call_page_faults():
  kept_line, kept = _run(_PROGRAM, "keep")
  system_line, system = _run(_PROGRAM, "system")
  assert "keeps freed memory" in kept_line and "system allocator" in system_line
  # 256 MiB of fresh pages is ~65,000 faults of 4 KiB per call with glibc's defaults.
  assert float(system) > 30_000, system
  assert float(kept) < 0.02 * float(system), (kept, system)


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_too_late_once_jax_has_started_says_so():
  (line,) = _run("import jax; jax.devices(); from jaxgan import hostmem; "
                 "print(hostmem.configure('keep'))")
  assert "already started" in line


def test_the_default_is_glibcs_allocator():
  (line,) = _run("from jaxgan import hostmem; print(hostmem.configure())",
                 env={"JAXGAN_MALLOC": ""})
  assert line == "system allocator (glibc's defaults; JAXGAN_MALLOC=keep keeps freed memory)"


HUGEPAGES = hostmem.hugepage_env() is not None
_NO_HUGEPAGES = ("needs glibc >= 2.35 and transparent huge pages in 'madvise' mode, without "
                 "glibc.malloc.hugetlb already set")


def test_hugepage_env_keeps_other_tunables_and_respects_a_set_one():
  base = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "JAX_PLATFORMS")}
  assert hostmem.hugepage_env(dict(base, GLIBC_TUNABLES="glibc.malloc.hugetlb=0")) is None
  if not HUGEPAGES:
    pytest.skip(_NO_HUGEPAGES)
  assert hostmem.hugepage_env(base)["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
  env = hostmem.hugepage_env(dict(base, GLIBC_TUNABLES="glibc.malloc.arena_max=2"))
  assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"


@pytest.mark.skipif(not HUGEPAGES, reason=_NO_HUGEPAGES)
def test_the_entry_points_restart_once_with_huge_pages():
  # configure(reexec=True) replaces the process by the same command line with the tunable,
  # and the restarted process does not restart again.
  lines = _run("import os; from jaxgan import hostmem; print(os.getpid()); "
               "print(hostmem.configure(reexec=True)); print(os.environ['GLIBC_TUNABLES'])",
               env={"JAXGAN_MALLOC": "", "GLIBC_TUNABLES": ""})
  # The pid twice (before and after the exec: the same process), then one description.
  assert len(lines) == 4 and lines[0] == lines[1], lines
  assert "transparent huge pages (glibc.malloc.hugetlb=1)" in lines[2]
  assert lines[3] == "glibc.malloc.hugetlb=1"


@pytest.mark.skipif(not HUGEPAGES, reason=_NO_HUGEPAGES)
def test_huge_pages_cut_the_per_call_page_faults():
  _, small = _run(_PROGRAM, "system", env={"GLIBC_TUNABLES": ""})
  _, huge = _run(_PROGRAM, "system", env={"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"})
  assert float(small) > 30_000, small  # 256 MiB in 4 KiB pages
  assert float(huge) < 0.1 * float(small), (huge, small)


def test_auto_leaves_accelerator_runs_alone():
  (line,) = _run("from jaxgan import hostmem; print(hostmem.configure())",
                 env={"JAX_PLATFORMS": "cuda", "JAXGAN_MALLOC": "auto"})
  assert "accelerator" in line
  (line,) = _run("from jaxgan import hostmem; print(hostmem.configure())",
                 env={"JAXGAN_MALLOC": "system"})
  assert line == "system allocator (JAXGAN_MALLOC=system)"


def test_unknown_mode_is_a_clear_error():
  with pytest.raises(ValueError, match=r"JAXGAN_MALLOC='fast': expected one of system, keep, auto"):
    hostmem.configure("fast")


# Fills the kept heap with 256 MiB of touched 1 MiB blocks, frees all but the last (so the
# free memory is not only at the top), then releases: prints the MiB released and the
# resident memory before and after.
_RELEASE = """
from jaxgan import hostmem
print(hostmem.configure("keep"))
import numpy as np
blocks = [np.ones(2**18, np.float32) for _ in range(257)]
del blocks[:-1]
before = hostmem._resident_mib()
released = hostmem.release_free()
print(released, before, hostmem._resident_mib())
"""


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc_trim only")
def test_release_free_hands_freed_heap_memory_back():
  line, numbers = _run(_RELEASE)
  assert "keeps freed memory" in line
  released, before, after = map(float, numbers.split())
  assert released > 200, numbers  # of the 256 MiB freed
  assert after < before - 200, numbers


_INIT_PROGRAMS = """
from jaxgan import hostmem
import jax, jax.numpy as jnp
fns = [jax.jit(lambda x, i=i: x * i + 1) for i in range(50)]
for f in fns:
  f(jnp.ones(8))
before = sum(f._cache_size() for f in fns)
released = hostmem.release_init_programs()
print(before, sum(f._cache_size() for f in fns), released is not None)
"""


def test_release_init_programs_drops_the_cached_programs():
  before, after, measured = _run(_INIT_PROGRAMS)[-1].split()
  assert (int(before), int(after)) == (50, 0)
  assert measured == str(GLIBC)
