"""A folder source's listing: every image file under a path, and its class labels (numpy).

The list stage of a 'folder:PATH' source: `list_images` gives the paths that `decode`
reads, `class_labels` the labels of `data.labels='subfolders'` (the index of each file's
first-level subfolder in sorted name order).
"""

from __future__ import annotations

import os

from absl import logging
import numpy as np

from jaxgan import errors
from jaxgan.data.spec import DataSpec

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


def list_images(path: str) -> list[str]:
  """Every image file under `path`, recursively, sorted; ValueError if there are none.

  Files are selected by extension (IMAGE_EXTENSIONS, any case); others are ignored.
  Links to folders are followed, but never into a folder already listed (by device and
  inode), so a link loop or two links to one folder list each file once; the links skipped
  are reported in a warning, as are folders that cannot be read.
  """
  root = os.path.abspath(os.path.expanduser(path))
  if not os.path.isdir(root):
    what = "is not a directory" if os.path.exists(root) else "does not exist"
    raise errors.DataError(f"config.data.source='folder:{path}': {root} {what}")
  files, repeats, unreadable = [], [], []
  root_stat = os.stat(root)
  visited = {(root_stat.st_dev, root_stat.st_ino)}
  for dirpath, dirnames, filenames in os.walk(root, followlinks=True,
                                              onerror=lambda e: unreadable.append(e.filename)):
    keep = []
    for name in sorted(dirnames):
      sub = os.path.join(dirpath, name)
      try:
        st = os.stat(sub)
      except OSError:
        unreadable.append(sub)  # a broken link
        continue
      if (st.st_dev, st.st_ino) in visited:
        repeats.append(sub)
        continue
      visited.add((st.st_dev, st.st_ino))
      keep.append(name)
    dirnames[:] = keep
    files += [os.path.join(dirpath, f) for f in filenames
              if f.lower().endswith(IMAGE_EXTENSIONS)]
  if repeats:
    logging.warning("folder:%s: skipped %d links to folders already listed (a link loop or a "
                    "second link to one folder): %s", path, len(repeats),
                    ", ".join(os.path.relpath(r, root) for r in repeats[:5])
                    + (", ..." if len(repeats) > 5 else ""))
  if unreadable:
    logging.warning("folder:%s: could not read %d folders or links: %s", path, len(unreadable),
                    ", ".join(map(str, unreadable[:5])) + (", ..." if len(unreadable) > 5 else ""))
  if not files:
    raise errors.DataError(f"config.data.source='folder:{path}': no images "
                           f"({', '.join(IMAGE_EXTENSIONS)}) found under {root}")
  return sorted(files)


def folder_classes(path: str, files: list[str]) -> tuple[np.ndarray, list[str]]:
  """Class labels from the first level of subfolders: (int32 [len(files)], class names).

  Classes are numbered in sorted name order; a file directly in the root has no class.
  """
  root = os.path.abspath(os.path.expanduser(path))
  first = [os.path.relpath(f, root).split(os.sep)[0] for f in files]
  loose = [f for f, part in zip(files, first) if part == os.path.basename(f)]
  if loose:
    raise errors.DataError(f"config.data.labels='subfolders': {len(loose)} image files lie "
                           f"directly in {root} (e.g. {os.path.basename(loose[0])}), not in a "
                           f"class subfolder; move them into one folder per class")
  names = sorted(set(first))
  index = {name: i for i, name in enumerate(names)}
  return np.array([index[part] for part in first], np.int32), names


def class_labels(spec: DataSpec, paths: list[str] | None) -> np.ndarray | None:
  """The folder's class labels when `spec.labels == 'subfolders'`, checked against
  `spec.num_classes`; None otherwise."""
  if spec.kind != "folder" or spec.labels != "subfolders":
    return None
  labels, names = folder_classes(spec.arg, paths)
  counts = np.bincount(labels, minlength=len(names))
  logging.info("%s: %d classes: %s", spec.source, len(names),
               ", ".join(f"{i} {n!r} ({c} files)" for i, (n, c) in enumerate(zip(names, counts))))
  if spec.num_classes and len(names) > spec.num_classes:
    raise errors.DataError(f"config.model.num_classes={spec.num_classes} is invalid: {spec.source} "
                           f"has {len(names)} class subfolders ({', '.join(names)}); set "
                           f"model.num_classes={len(names)}")
  return labels
