"""Where a run is assembled from its config: every part's check of its own section, and the
values the parts below are handed (the stages).

    assemble.validate(config)               # ConfigError naming the first bad field, if any
    stages = assemble.stages(config, mesh)  # the family's, each batch checked against the mesh
    assemble.data_stages(config, stages)    # what `input_pipeline.create_iterator` reads

`validate` runs before anything compiles, in the loop, `jaxgan.benchmark` and
`benchmarks/fingerprint.py`; each part defines its own check where its fields are read.
"""

from __future__ import annotations

import jax
import ml_collections
from absl import logging

from jaxgan import families
from jaxgan import sharding
from jaxgan.data import spec as data_spec
from jaxgan.training import actions
from jaxgan.training import augment
from jaxgan.training import evaluators
from jaxgan.training import step


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for the first invalid field; returns None if all are valid.

  The sections in order: the shared model fields (and no field the family does not
  define), data, train/optim, augment, evals, the loop's own, then the family's fields.
  """
  families.validate_shared(config)
  family = families.get(config.model.family)
  data_spec.validate(config)
  step.validate(config, family)
  augment.validate(config)
  evaluators.validate(config)
  actions.validate(config)
  family.validate(config)


def stages(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh
           ) -> tuple[families.Stage, ...]:
  """The family's stages of the run, each batch checked to split over `mesh` (DataError);
  logged when there are several."""
  stages = families.stages(config)
  for stage in stages:
    what = f"the batch of stage {stage.name}" if stage.name else "config.train.batch_size"
    sharding.check_batch_divides(stage.batch_size, mesh, what)
  if len(stages) > 1:
    logging.info("Stages: %s.", ", ".join(f"{s.name or i} from step {s.start}"
                                          for i, s in enumerate(stages)))
  return stages


def data_stages(config: ml_collections.ConfigDict,
                stages: tuple[families.Stage, ...] | None = None) -> tuple:
  """The input pipeline's stages: ((first step, global images per batch, (height, width)),
  ...) of the family's `stages` (given, or of `config`), one batch per D update."""
  stages = families.stages(config) if stages is None else stages
  d_steps = int(config.train.d_steps)
  return tuple((s.start, s.batch_size * d_steps, tuple(s.image_shape[:2])) for s in stages)
