"""The GAN training step: `d_steps` D updates, `g_steps` G updates, the regularizers, the
EMA and the state's extra part, as one compiled program, for any model family.

`train_step` is a pure per-device function `(state, batch) -> (state, metrics)` that knows
the networks only through the family interface (`jaxgan.families.base.GAN`): one `Calls`
pair is used at every call site, so G is called by `calls.g` and D by `calls.d` for reals,
fakes, penalties and the G update alike, and a wrapper of `calls.d` applies everywhere at
once: `augmented_calls` augments every image D sees (config.augment, with ADA's p in the
state's extra part). Non-parameter collections are carried generically.
`make_train_step` binds the config's static choices and wraps the step in `jax.shard_map`
over the mesh's 'data' axis (each device takes its slice of the batch, gradients and
metrics are averaged over devices) and `jax.jit` with the state donated.

Randomness: every update draws fresh noise (and, when conditional, fake labels uniformly
over the classes) from the state's key; with train.g_update_fakes='reuse' the first G
update takes the last D update's noise and images instead. Noise, labels, penalty
interpolation weights and the augmentation's parameters are drawn for the whole global
batch from the replicated key and each device keeps its own rows, so devices see different
noise and the result does not depend on how many devices share the batch; dropout keys are
folded with the device index.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh, PartitionSpec as P

from jaxgan import checks
from jaxgan import errors
from jaxgan import families
from jaxgan.sharding import DATA_AXIS
from jaxgan.training import augment as augment_lib
from jaxgan.training import losses as losses_lib
from jaxgan.training import regularizers as regularizers_lib
from jaxgan.training.state import GANState, TrainState

# train.g_update_fakes: 'fresh' noise for every G update, or 'reuse' D's last fakes in the first.
G_UPDATE_FAKES = ("fresh", "reuse")

Array = jax.Array
Batch = dict[str, Array]
Metrics = dict[str, Array]


def _local_rows(sample: Callable, key: Array, local_shape: tuple[int, ...],
                axis_name: str | None) -> Array:
  """This device's rows of a global random array drawn by `sample(key, shape)`."""
  if axis_name is None:
    return sample(key, local_shape)
  n, i = jax.lax.axis_size(axis_name), jax.lax.axis_index(axis_name)
  full = sample(key, (n * local_shape[0],) + tuple(local_shape[1:]))
  return jax.lax.dynamic_slice_in_dim(full, i * local_shape[0], local_shape[0])


def _device_key(key: Array, axis_name: str | None) -> Array:
  return key if axis_name is None else jax.random.fold_in(key, jax.lax.axis_index(axis_name))


def _pmean(tree, axis_name: str | None):
  """Mean over devices of the floating-point leaves (integer state is the same on all).
  Nothing on a one-device axis, where XLA:CPU would keep the all-reduce as a copy of its
  operand (dcgan128: a second 100 MiB buffer of G's projection gradient)."""
  if axis_name is None or jax.lax.axis_size(axis_name) == 1:
    return tree
  mean = lambda x: jax.lax.pmean(x, axis_name) if jnp.issubdtype(x.dtype, jnp.inexact) else x  # noqa: E731
  return jax.tree.map(mean, tree)


class Calls(NamedTuple):
  """The training-mode calls of G and D that every call site of the step uses.

  g(variables, z, labels, key) -> (images, collections)
  d(variables, x, labels, key) -> (logits, collections)
  reals(x) -> the real batch as D sees it (`GAN.reals`; identity for most families)
  """
  g: Callable
  d: Callable
  reals: Callable = lambda x: x


def make_calls(gan: families.GAN, axis_name: str | None, extra: Any = None) -> Calls:
  """The family's generate/discriminate in training mode, with per-device dropout keys;
  `extra` is the family's part of the state's extra (passed to every call)."""
  def g(variables, z, labels, key):
    return gan.generate(variables, z, labels, train=True, rng=_device_key(key, axis_name),
                        extra=extra)

  def d(variables, x, labels, key):
    return gan.discriminate(variables, x, labels, train=True, rng=_device_key(key, axis_name),
                            extra=extra)
  return Calls(g, d, lambda x: gan.reals(x, extra))


def augmented_calls(calls: Calls, policy: tuple[str, ...], p: Array,
                    axis_name: str | None) -> Calls:
  """`calls` whose D augments its input first (every call site: reals, fakes, penalties and
  the G update, which gets the gradients through the augmentation). The augmentation's
  draws are global rows from the call's key, so they do not depend on the device count."""
  uniform = lambda k, shape: _local_rows(jax.random.uniform, k, shape, axis_name)  # noqa: E731

  def d(variables, x, labels, key):
    x = augment_lib.augment(x, jax.random.fold_in(key, 0x61756720), p, policy, uniform)
    return calls.d(variables, x, labels, key)
  return calls._replace(d=d)


def _noise(key: Array, batch: int, gan: families.GAN, axis_name: str | None):
  """(z, labels) of `batch` rows: normal latents and, when conditional, uniform classes."""
  z = _local_rows(jax.random.normal, key, (batch, gan.latent_dim), axis_name)
  if not gan.conditional:
    return z, None
  draw = lambda k, shape: jax.random.randint(k, shape, 0, gan.num_classes, jnp.int32)  # noqa: E731
  return z, _local_rows(draw, jax.random.fold_in(key, 1), (batch,), axis_name)


def _regularize(reg: regularizers_lib.Regularizer, step: Array, term: Callable[[], Array]):
  """(weighted term, unweighted value): lazily on steps with step % every == 0."""
  if reg.every == 1:
    value = term()
    return reg.weight * value, value
  value = jax.lax.cond(step % reg.every == 0, term, lambda: jnp.zeros((), jnp.float32))
  return (reg.weight * reg.every) * value, value


class Fakes(NamedTuple):
  """A D update's fakes for a G update that reuses them (train.g_update_fakes='reuse'):
  the noise and fake labels, the images G made of them, and the pullback of G's forward
  pass from image gradients to G's parameter gradients (`jax.vjp`), so the G update needs
  no G forward of its own."""
  z: Array
  labels: Array | None
  images: Array
  pullback: Callable


def d_update(d: TrainState, g: TrainState, real: Array, real_labels: Array | None, key: Array,
             step: Array, *, gan: families.GAN, calls: Calls, loss: losses_lib.GANLoss,
             label_smoothing: float, regularizers: Sequence[regularizers_lib.Regularizer],
             axis_name: str | None, drift: float = 0.0, real_sign: bool = False,
             keep_fakes: bool = False):
  """One discriminator update on `real` and fresh fakes.

  Returns (d, g_collections, metrics, fakes): `fakes` is a `Fakes` for the G update when
  `keep_fakes` (G's forward pass is then linearized, its residuals kept), else None.

  `drift` > 0 adds drift * E[D(x)^2] on the real logits (Karras et al. 2018), which keeps a
  Wasserstein critic's outputs near zero. `real_sign` adds the metric 'd/real_sign',
  E[sign(D(real))] (ADA's overfitting heuristic)."""
  k_z, k_real, k_fake, k_pen, k_pdrop = jax.random.split(key, 5)
  real = calls.reals(real)
  z, fake_labels = _noise(k_z, real.shape[0], gan, axis_name)
  generate = lambda params: calls.g(g.variables(params), z, fake_labels, k_z)  # noqa: E731
  if keep_fakes:
    fake, pullback, g_collections = jax.vjp(generate, g.params, has_aux=True)
    fakes = Fakes(z, fake_labels, fake, pullback)
  else:
    (fake, g_collections), fakes = generate(g.params), None
  fake = jax.lax.stop_gradient(fake)

  uniform = lambda k, shape: _local_rows(jax.random.uniform, k, shape, axis_name)  # noqa: E731

  def loss_fn(params):
    real_logits, colls = calls.d(d.variables(params), real, real_labels, k_real)
    fake_logits, colls = calls.d({"params": params, **colls}, fake, fake_labels, k_fake)
    l_real, l_fake = loss.d(real_logits, fake_logits, label_smoothing)
    total, aux = l_real + l_fake, {}
    if drift:
      aux["drift"] = jnp.mean(jnp.square(real_logits))
      total = total + drift * aux["drift"]
    # Per-sample penalties; the collections' updates of their extra passes are discarded.
    critic = lambda x: calls.d({"params": params, **colls}, x, real_labels, k_pdrop)[0]  # noqa: E731
    for reg in regularizers:
      weighted, value = _regularize(
          reg, step, lambda: reg.fn(critic, real, fake, k_pen, uniform=uniform))  # noqa: B023
      total, aux = total + weighted, {**aux, reg.name: value}
    metrics = {"loss/d": total, "loss/d_real": l_real, "loss/d_fake": l_fake,
               "d/real": real_logits.mean(), "d/fake": fake_logits.mean(), **aux}
    if real_sign:
      metrics["d/real_sign"] = jnp.mean(jnp.sign(real_logits))
    return total, (colls, metrics)

  grads, (colls, metrics) = jax.grad(loss_fn, has_aux=True)(d.params)
  grads = _pmean(grads, axis_name)
  metrics["grad_norm/d"] = optax.tree.norm(grads)
  return d.apply_gradients(grads=grads, collections=colls), g_collections, metrics, fakes


def g_update(g: TrainState, d: TrainState, key: Array, step: Array, *, gan: families.GAN,
             calls: Calls, loss: losses_lib.GANLoss, batch_size: int,
             regularizers: Sequence[regularizers_lib.Regularizer], axis_name: str | None,
             fakes: Fakes | None = None):
  """One generator update through the discriminator. Returns (g, d_collections, metrics).

  With `fakes` (a D update's, of the same G parameters) the update uses their noise and
  images: the loss gradient with respect to the images is pulled back through the D
  update's G forward pass, and G's collections stay as that pass left them. Without, it
  draws new noise and runs G itself. The regularizers' terms run G in both cases."""
  k_z, k_drop = jax.random.split(key)
  if fakes is None:
    z, labels = _noise(k_z, batch_size, gan, axis_name)
  else:
    z, labels = fakes.z, fakes.labels

  def reg_terms(params, total):
    """total + the regularizers' weighted terms, and their values."""
    generate = lambda zz, ll: calls.g(g.variables(params), zz, ll, k_z)[0]  # noqa: E731
    aux = {}
    for i, reg in enumerate(regularizers):
      weighted, value = _regularize(
          reg, step, lambda: reg.fn(generate, z, labels, jax.random.fold_in(k_drop, i + 1)))  # noqa: B023
      total, aux = total + weighted, {**aux, reg.name: value}
    return total, aux

  def adversarial(fake):
    logits, d_colls = calls.d(d.variables(), fake, labels, k_drop)
    return loss.g(logits), d_colls

  if fakes is None:
    def loss_fn(params):
      fake, g_colls = calls.g(g.variables(params), z, labels, k_z)
      l_adv, d_colls = adversarial(fake)
      total, aux = reg_terms(params, l_adv)
      return total, (g_colls, d_colls, aux)

    (l_g, (g_colls, d_colls, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(g.params)
  else:
    (l_g, d_colls), d_fake = jax.value_and_grad(adversarial, has_aux=True)(fakes.images)
    (grads,), g_colls, aux = fakes.pullback(d_fake), g.collections, {}
    if regularizers:
      zero = jnp.zeros((), jnp.float32)
      (l_reg, aux), reg_grads = jax.value_and_grad(reg_terms, has_aux=True)(g.params, zero)
      l_g, grads = l_g + l_reg, jax.tree.map(jnp.add, grads, reg_grads)
  grads = _pmean(grads, axis_name)
  g = g.apply_gradients(grads=grads, collections=g_colls)
  return g, d_colls, {"loss/g": l_g, "grad_norm/g": optax.tree.norm(grads), **aux}


def train_step(state: GANState, batch: Batch, *, gan: families.GAN, d_steps: int, g_steps: int,
               ema_decay: float, loss: losses_lib.GANLoss, label_smoothing: float,
               regularizers: Sequence[regularizers_lib.Regularizer] = (),
               axis_name: str | None = None, calls: Calls | None = None,
               drift: float = 0.0, augment: augment_lib.Options | None = None,
               g_update_fakes: str = "fresh") -> tuple[GANState, Metrics]:
  """d_steps D updates (one slice of `batch` each), g_steps G updates, the EMA, the extra.

  Args:
    state: the replicated GANState.
    batch: {'image': [d_steps * b, H, W, C]} (+ 'label' [d_steps * b] when conditional),
      this device's rows.
    gan: the family's networks.
    d_steps, g_steps: updates per step.
    ema_decay: EMA decay of the generator's parameters (0: no EMA).
    loss, label_smoothing: the GAN loss and its one-sided smoothing.
    regularizers: the regularization terms, each on its network and schedule.
    axis_name: the mesh axis to average over, or None on one device without shard_map.
    calls: the G and D calls to use everywhere; default `make_calls(gan, axis_name,
      state.extra['family'])`.
    drift: the weight of the drift term on D's real logits (0: none).
    augment: the augmentation of every image D sees (`jaxgan.training.augment`), with p
      from state.extra['augment']; None: none.
    g_update_fakes: 'fresh' (every G update draws new noise) or 'reuse' (the first G update
      uses the last D update's noise and fakes, one G forward fewer; the PyTorch DCGAN
      tutorial's schedule).

  Returns:
    The new state and a dict of scalar metrics (on device).
  """
  calls = make_calls(gan, axis_name, state.extra.get("family")) if calls is None else calls
  if augment is not None:
    calls = augmented_calls(calls, augment.policy, state.extra["augment"]["p"], axis_name)
  d_regs = tuple(r for r in regularizers if r.network == "d")
  g_regs = tuple(r for r in regularizers if r.network == "g")
  rng, key = jax.random.split(state.rng)
  split = lambda x: x.reshape((d_steps, -1) + x.shape[1:])  # noqa: E731
  reals = split(batch["image"])
  labels = split(batch["label"]) if gan.conditional else None
  g, d, metrics, signs = state.g, state.d, {}, []
  if gan.restart_optimizers is not None:
    restart = gan.restart_optimizers(state.step)
    g, d = _restart_optimizer(g, restart), _restart_optimizer(d, restart)
  if g_update_fakes not in G_UPDATE_FAKES:
    raise ValueError(f"g_update_fakes={g_update_fakes!r}: expected one of "
                     f"{G_UPDATE_FAKES}")
  fakes = None
  for i in range(d_steps):
    d, g_colls, metrics, fakes = d_update(
        d, g, reals[i], None if labels is None else labels[i], jax.random.fold_in(key, i),
        state.step, gan=gan, calls=calls, loss=loss, label_smoothing=label_smoothing,
        regularizers=d_regs, axis_name=axis_name, drift=drift,
        real_sign=augment is not None and augment.ada,
        keep_fakes=g_update_fakes == "reuse" and i == d_steps - 1)
    if augment is not None and augment.ada:
      signs.append(metrics.pop("d/real_sign"))
    g = g.replace(collections=g_colls)
  for j in range(g_steps):
    g, d_colls, g_metrics = g_update(
        g, d, jax.random.fold_in(key, d_steps + j), state.step, gan=gan, calls=calls,
        loss=loss, batch_size=reals.shape[1], regularizers=g_regs, axis_name=axis_name,
        fakes=fakes if j == 0 else None)
    d = d.replace(collections=d_colls)
  metrics.update(g_metrics)
  # Per-device statistics (BatchNorm) differ between devices; keep their mean (replicated).
  g = g.replace(collections=_pmean(g.collections, axis_name))
  d = d.replace(collections=_pmean(d.collections, axis_name))
  g_ema = state.g_ema
  if g_ema is not None:
    g_ema = optax.incremental_update(g.params, g_ema, step_size=1.0 - ema_decay)
  extra = dict(state.extra)
  if gan.extra_update is not None:
    extra["family"] = gan.extra_update(extra["family"], state.step)
  if augment is not None:
    if augment.ada:
      images = reals.shape[0] * reals.shape[1] * (
          1 if axis_name is None else jax.lax.axis_size(axis_name))
      extra["augment"], metrics["augment/rt"] = augment_lib.ada_update(
          extra["augment"], _pmean(jnp.mean(jnp.stack(signs)), axis_name), images,
          target=augment.target, interval=augment.interval, kimg=augment.kimg,
          p_max=augment.p_max)
    metrics["augment/p"] = extra["augment"]["p"]
  state = GANState(g=g, d=d, g_ema=g_ema, rng=rng, step=state.step + 1, extra=extra)
  return state, _pmean(metrics, axis_name)


def _restart_optimizer(ts: TrainState, restart: Array) -> TrainState:
  """`ts` with its optimizer state restarted (tx.init) where `restart` is true."""
  fresh = lambda: ts.tx.init(ts.params)  # noqa: E731
  return ts.replace(opt_state=jax.lax.cond(restart, fresh, lambda: ts.opt_state))


def validate(config: ml_collections.ConfigDict, family: families.Family) -> None:
  """ConfigError for a bad field of `config.train` or `config.optim`; `family` (the run's)
  says whether its D couples samples (BatchNorm), which per-sample penalties refuse."""
  checks.check_choice(config, "train.loss", tuple(losses_lib.LOSSES))
  checks.check_choice(config, "train.penalty", tuple(regularizers_lib.PENALTIES))
  checks.check_choice(config, "train.g_update_fakes", G_UPDATE_FAKES)
  for field in ("train.batch_size", "train.num_steps", "train.d_steps", "train.g_steps",
                "train.penalty_every", "optim.g_lr", "optim.d_lr"):
    checks.check_positive(config, field)
  t = config.train
  if not isinstance(t.penalty_every, int):
    checks.fail("train.penalty_every", t.penalty_every, "expected a whole number of steps")
  if not 0.0 <= t.label_smoothing < 1.0:
    checks.fail("train.label_smoothing", t.label_smoothing, "expected a value in [0, 1)")
  if not 0.0 <= t.ema_decay < 1.0:
    checks.fail("train.ema_decay", t.ema_decay, "expected a decay in [0, 1); 0 disables EMA")
  if not (isinstance(t.drift, (int, float)) and t.drift >= 0):
    checks.fail("train.drift", t.drift, "expected a weight >= 0 (0: no drift term)")
  if t.penalty != "none" and t.penalty_weight <= 0:
    checks.fail("train.penalty_weight", t.penalty_weight, "expected a positive weight")
  coupled = family.batch_coupled_d(config)
  if (t.penalty in regularizers_lib.PER_SAMPLE_PENALTIES and coupled is not None
      and not t.allow_batchnorm_with_penalty):
    field, value = coupled
    checks.fail(field, value,
                f"BatchNorm in the discriminator makes each sample's output depend on the "
                f"whole batch, so the per-sample gradient penalty train.penalty={t.penalty!r} "
                f"no longer penalises per-sample gradients (the WGAN-GP paper forbids it). Use "
                f"'layer', 'spectral' or 'none', or set train.allow_batchnorm_with_penalty=True "
                f"to proceed anyway")


def step_batch(batch: Batch, gan: families.GAN) -> Batch:
  """The arrays of a pipeline batch that the step takes; labels checked when conditional."""
  if not gan.conditional:
    return {"image": batch["image"]}
  if "label" not in batch:
    raise errors.ConfigError(
        f"config.model.num_classes={gan.num_classes} is invalid: the data source gives no "
        f"labels (a folder needs data.labels='subfolders'; a TFDS dataset needs a 'label' "
        f"feature); use num_classes=0 for unlabelled data")
  return {"image": batch["image"], "label": batch["label"]}


def step_options(config: ml_collections.ConfigDict, gan: families.GAN | None = None
                 ) -> dict[str, Any]:
  """The static keyword arguments of `train_step` for `config`."""
  t = config.train
  return dict(gan=families.build(config) if gan is None else gan, d_steps=t.d_steps,
              g_steps=t.g_steps, ema_decay=t.ema_decay, loss=losses_lib.get_loss(t.loss),
              label_smoothing=t.label_smoothing, drift=float(t.drift),
              regularizers=regularizers_lib.from_config(config),
              augment=augment_lib.options(config), g_update_fakes=t.g_update_fakes)


def make_train_step(config: ml_collections.ConfigDict, mesh: Mesh, *, donate: bool = True,
                    gan: families.GAN | None = None, **overrides):
  """The compiled step: jit(shard_map(train_step)) over `mesh`'s data axis.

  The state is replicated (P()), the batch split along its first axis (P('data')).
  `overrides` replace entries of `step_options(config)` (e.g. `regularizers=...`).
  """
  fn = functools.partial(train_step, axis_name=DATA_AXIS,
                         **{**step_options(config, gan), **overrides})
  # check_vma=False: gradients are per-device and averaged explicitly by `_pmean` (with
  # varying-type checking on, grad would psum them implicitly and the custom VJP of
  # kernels.cpu.conv_transpose_col2im would need device-varying annotations).
  sharded = jax.shard_map(fn, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=(P(), P()),
                          check_vma=False)
  return jax.jit(sharded, donate_argnums=(0,) if donate else ())
