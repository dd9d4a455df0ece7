"""The config schema as data: every shared field jaxgan reads, with its default and its doc.

Config files in `configs/` start from `default_config(family)` and override fields. The
shared fields are defined and documented once, here; `config.model` holds the shared model
fields (`families.SHARED_MODEL_FIELDS`) and the fields of the family `config.model.family`,
which that family defines (`jaxgan/families/`). Nothing here validates: each part checks its own
section where it lives (families: `model`, `jaxgan.data.spec`: `data`, the step:
`train`/`optim`, augment, the evaluators: `evals`, the actions: the loop's fields), and
`jaxgan.training.assemble.validate(config)` calls them all before anything is compiled.
"""

from __future__ import annotations

import os

import ml_collections

from jaxgan import errors
from jaxgan import families

ConfigError = errors.ConfigError  # An invalid config value, raised before any compilation.


def default_config(family: str = "dcgan") -> ml_collections.ConfigDict:
  """The full schema with defaults: the shared fields and those of model `family` (the
  default is the 128x128 hobby DCGAN, see configs/dcgan128.py)."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # seeds the initialisation, the noise and the data order

  # ---- data (jaxgan/input_pipeline.py) ----
  c.data = d = ml_collections.ConfigDict()
  # 'builtin:NAME', 'folder:PATH' or 'tfds:NAME[:SPLIT]'.
  d.source = "builtin:shapes"
  d.image_size = (128, 128)  # (height, width)
  d.channels = 3  # 3 = RGB, 1 = grayscale
  d.resize = "center_crop"  # 'center_crop', 'random_crop' or 'resize' (see jaxgan/data/tf_ops.py)
  d.background = (255, 255, 255)  # RGBA images are composited onto this colour
  d.flip = True  # random horizontal flip
  d.shuffle_buffer = 10_000  # TFDS shuffle buffer (folder and builtin data use full permutations)
  d.cache = "memory"  # 'memory', 'none' or a directory path for an on-disk cache
  d.tfds_data_dir = ""  # '' = TFDS default
  d.tfds_image_key = ""  # '' = find the image feature automatically
  d.builtin_size = 2048  # number of examples of a builtin dataset
  d.prefetch = 2  # batches placed on the devices ahead of the step
  # Class labels for model.num_classes > 0: 'none', or 'subfolders' (folder sources: the
  # class of an image is its first-level subfolder, classes numbered in sorted name order).
  # TFDS sources use their 'label' feature whatever this says.
  d.labels = "none"

  # ---- model (jaxgan/families): the shared fields, then the family's own ----
  c.model = m = ml_collections.ConfigDict()
  m.family = family  # one of jaxgan.families.FAMILIES (--help lists each one's fields)
  m.latent_dim = 100  # size of G's noise vector z
  m.num_classes = 0  # > 0: class-conditional G and D, labels from the data (data.labels)
  m.dtype = "float32"  # computation dtype, 'float32' or 'bfloat16'; parameters stay float32
  # how (transposed) convolutions are computed: 'auto', 'col2im' or 'lax' (see jaxgan/kernels)
  m.upsample_impl = "auto"
  m.update(families.get(family).model_config())

  # ---- training (jaxgan/training/step.py, jaxgan/training/loop.py) ----
  c.train = t = ml_collections.ConfigDict()
  t.batch_size = 32  # global batch of one D or G update
  t.num_steps = 20_000  # one step = d_steps D updates + g_steps G updates
  t.d_steps = 1  # D updates per step, each on its own real batch
  t.g_steps = 2  # G updates per step
  t.g_update_fakes = "fresh"  # 'fresh': new noise per G update; 'reuse': the first takes D's fakes
  # 'non_saturating', 'minimax', 'hinge', 'least_squares' or 'wasserstein'
  # (jaxgan/training/losses.py)
  t.loss = "non_saturating"
  t.label_smoothing = 0.0  # one-sided: real target 1 - label_smoothing (non_saturating, minimax)
  t.drift = 0.0  # drift term weight: + drift * E[D(x)^2] on real logits (ProGAN: 0.001)
  t.penalty = "none"  # 'none', 'wgan_gp', 'r1', 'dragan'; see jaxgan/training/regularizers.py
  t.penalty_weight = 10.0  # weight of train.penalty in D's loss
  t.penalty_every = 1  # lazy regularization: every N steps, with the weight times N (StyleGAN2)
  t.allow_batchnorm_with_penalty = False  # gradient penalties are per sample: BatchNorm in D breaks them
  t.ema_decay = 0.0  # 0 disables the EMA generator
  t.sync_batchnorm = False  # multi-device: BatchNorm statistics over the whole global batch

  # ---- augmentation of every image D sees (jaxgan/training/augment.py): off by default ----
  c.augment = a = ml_collections.ConfigDict()
  # '' (none) or a comma-separated list of 'flip', 'rotate90', 'translation', 'color',
  # 'cutout', e.g. 'color,translation,cutout'
  a.policy = ""
  a.probability = 1.0  # fixed p per op and image (DiffAugment: 1); ignored with ada
  a.ada = False  # adaptive p (ADA), starting at 0
  a.ada_target = 0.6  # the r_t = E[sign(D(real))] that p is steered towards
  a.ada_interval = 4  # steps between adjustments of p
  a.ada_kimg = 500.0  # thousands of images over which p can move from 0 to 1
  a.ada_max = 1.0  # the highest p ADA may reach

  c.optim = o = ml_collections.ConfigDict()
  o.g_lr = 1e-4  # G's Adam learning rate
  o.d_lr = 2e-4  # D's Adam learning rate
  o.b1 = 0.5  # Adam beta1 of both networks
  o.b2 = 0.999  # Adam beta2 of both networks
  o.eps = 1e-7  # Keras' Adam epsilon (the hobby project is Keras)

  # ---- the loop (jaxgan/training/loop.py, jaxgan/training/actions.py) ----
  c.log_every = 50  # steps between console lines and metrics.jsonl records
  c.log_every_secs = 60.0  # also log when this long has passed since the last log; 0: off
  c.sample_every = 500  # steps between sample grids
  c.checkpoint_every = 1000  # steps between checkpoints (and one at the end)
  c.max_to_keep = 3  # checkpoints kept; older ones are deleted
  c.num_samples = 64  # images in a sample grid
  c.report_every_secs = 120.0  # rewrite WORKDIR/report.html this often in a run; 0: at the end
  # Evaluators run on their own schedule (jaxgan/training/evaluators.py): name -> ConfigDict
  # with `type` (one of evaluators.EVALUATORS), `every` (steps) and the type's options.
  c.evals = ml_collections.ConfigDict()
  return c


def load_file(path: str | os.PathLike, arg: str | None = None) -> ml_collections.ConfigDict:
  """`get_config([arg])` of the config file at `path`, loaded as `--config` loads it (a
  config can build on another: configs/wgan_gp128.py starts from configs/art128.py)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  spec = importlib.util.spec_from_file_location(
      f"jaxgan_config_{os.path.splitext(os.path.basename(path))[0]}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config() if arg is None else module.get_config(arg)


def images_per_step(config: ml_collections.ConfigDict) -> int:
  """Real images consumed by one training step (one batch per D update)."""
  return config.train.batch_size * config.train.d_steps



# ---- field documentation (for --help) -------------------------------------------------------

def _comments(source: str) -> dict[int, str]:
  """Line number -> the text of the comment on that line (1-based)."""
  import io  # pylint: disable=g-import-not-at-top
  import tokenize  # pylint: disable=g-import-not-at-top
  out = {}
  for token in tokenize.generate_tokens(io.StringIO(source).readline):
    if token.type == tokenize.COMMENT:
      out[token.start[0]] = token.string.lstrip("#").strip()
  return out


def _expand_names(doc: str, names: dict) -> str:
  """'one of NORMS' -> "one of 'batch', 'layer', ..." for the tuples of constants it names."""
  import re  # pylint: disable=g-import-not-at-top

  def value(match):
    v = names.get(match.group(0))
    return ", ".join(map(repr, v)) if isinstance(v, tuple) and v and all(
        isinstance(x, str) for x in v) else match.group(0)
  return re.sub(r"\b[A-Z][A-Z_]{2,}\b", value, doc)


def _schema_docs(fn, root: str) -> dict[str, str]:
  """'a.b' -> the comment documenting field a.b in the schema function `fn`.

  `fn` builds a ConfigDict by attribute assignments (`c.data = d = ConfigDict()`,
  `d.source = 'builtin:shapes'  # what it means`); a field's meaning is the comment on its
  line, else the comment lines right above it. The first `NAME = ConfigDict()` names the
  root, which stands for `root` ('' for the whole config, 'model' for a family's fields).
  """
  import ast  # pylint: disable=g-import-not-at-top
  import inspect  # pylint: disable=g-import-not-at-top
  import textwrap  # pylint: disable=g-import-not-at-top
  source = textwrap.dedent(inspect.getsource(fn))
  comments, lines = _comments(source), source.splitlines()
  aliases: dict[str, str] = {}
  docs: dict[str, str] = {}

  def path_of(node) -> str | None:
    if isinstance(node, ast.Name):
      return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
      base = path_of(node.value)
      return None if base is None else f"{base}.{node.attr}".lstrip(".")
    return None

  for node in ast.walk(ast.parse(source)):
    if not isinstance(node, ast.Assign):
      continue
    value_is_dict = (isinstance(node.value, ast.Call)
                     and getattr(node.value.func, "attr", "") == "ConfigDict"
                     and not node.value.args)
    if not aliases and value_is_dict and isinstance(node.targets[0], ast.Name):
      aliases[node.targets[0].id] = root
      continue
    paths = [path_of(t) for t in node.targets if isinstance(t, ast.Attribute)]
    for target in node.targets:
      if isinstance(target, ast.Name) and paths and paths[0] is not None:
        aliases[target.id] = paths[0]
    for path in paths:
      if path is None:
        continue
      doc = " ".join(comments[n] for n in range(node.lineno, node.end_lineno + 1)
                     if n in comments)
      doc = _expand_names(doc, fn.__globals__)
      if not doc:  # the comment block right above
        above, n = [], node.lineno - 1
        while n >= 1 and n in comments and lines[n - 1].strip().startswith("#"):
          above.insert(0, comments[n])
          n -= 1
        doc = _expand_names(" ".join(a for a in above if not a.startswith("----")),
                            fn.__globals__)
      docs[path] = doc
  return docs


def field_docs(family: str = "dcgan") -> dict[str, str]:
  """'data.source' -> its one-line meaning, for every field of default_config(family)."""
  docs = _schema_docs(default_config, "")
  docs.update(_schema_docs(type(families.get(family)).model_config, "model"))
  return docs


def describe_fields(width: int = 100) -> str:
  """Every config field with its default and meaning: the shared fields, then each family's
  own model fields (the text `--help` prints)."""
  import textwrap  # pylint: disable=g-import-not-at-top

  def flat(tree, prefix=""):
    for key, value in tree.items():
      if isinstance(value, ml_collections.ConfigDict):
        yield from flat(value, f"{prefix}{key}.")
      else:
        yield f"{prefix}{key}", value

  def rows(items, docs):
    out = []
    for field, value in items:
      out.append(f"  {field} = {value!r}")
      if docs.get(field):
        out += textwrap.wrap(docs[field], width, initial_indent="      ",
                             subsequent_indent="      ")
    return out

  shared = [(f, v) for f, v in flat(default_config())
            if not f.startswith("model.")
            or f.split(".")[1] in families.SHARED_MODEL_FIELDS]
  parts = ["Config fields: --config.FIELD=VALUE overrides one; shown with the schema's",
           "defaults (jaxgan/config.py), which a config file changes.", "",
           *rows(shared, field_docs())]
  for name in families.FAMILIES:
    config = default_config(name)
    own = [(f, v) for f, v in flat(config.model, "model.")
           if f.split(".")[1] not in families.SHARED_MODEL_FIELDS]
    parts += ["", f"Fields of model.family={name!r} (jaxgan/families/{name}.py):",
              *rows(own, field_docs(name))]
  return "\n".join(parts)
