"""PASCAL VOC (and the other zoo datasets) for the FCN models: readers, the paper's metrics,
the published numbers, and ``python -m voc.evaluate``.

Modules: ``datasets`` (VOC, SBD, seg11valid), ``other_datasets`` (SIFT Flow, PASCAL-Context,
NYUDv2), ``metrics`` (confusion matrix and scores), ``inference`` (input transform, forward and
argmax), ``evaluate`` (library function and CLI), ``published``, ``palette``, ``synthetic``.
"""
