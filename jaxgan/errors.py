"""Expected failures that the command-line tools report in one line, defined where importing
them costs nothing (no JAX, no TensorFlow), so that a tool can catch them before it has
imported the code that raises them."""


class CorruptCheckpointError(RuntimeError):
  """A checkpoint that cannot be read, or whose arrays differ from their saved checksums
  or are not finite (jaxgan.checkpointing)."""
