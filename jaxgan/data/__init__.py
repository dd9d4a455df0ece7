"""Parts of the input pipeline; the entry point is `jaxgan.input_pipeline`.

numpy-only modules (`builtin`, `order`, `store`) import without TensorFlow; `tf_ops` and
`tfds_source` import it and are only loaded when a pipeline is created.
"""
