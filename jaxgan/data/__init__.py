"""The stages of the input pipeline, one per module; the entry point is `jaxgan.input_pipeline`.

    spec (DataSpec: config.data + the stages the caller hands down; `validate`)
      -> folder | builtin | tfds_source   list: a folder's files and labels, a builtin's
                                          renderer, a TFDS split's examples
      -> decode (+ tf_ops)                bytes -> stored uint8 pixels
      -> store                            the decoded dataset, in RAM or cached on disk
      -> order                            which example at which position
      -> finish                           crop, flip, to float, box-downsample
      -> batches                          host batches and reference sets: composes the rest

numpy-only modules (`spec`, `folder`, `builtin`, `store`, `order`, `finish`) import without
TensorFlow; `decode`, `tf_ops`, `tfds_source` and `batches` import it and are only loaded
when a pipeline is created.
"""
