"""PASCAL VOC and the other zoo datasets as data: readers, splits, class names, dataset means,
palettes, and the paper's metrics. No models: ``voc`` imports nothing of ``fcn_ref`` or ``convert``
(running a model on the data is ``fcn_ref``'s: ``python -m fcn_ref.evaluate``).

Modules: ``datasets`` (VOC, SBD, seg11valid), ``other_datasets`` (SIFT Flow, PASCAL-Context,
NYUDv2), ``means`` (each dataset's mean pixel), ``metrics`` (confusion matrix and scores),
``published`` (published scores, as data), ``palette``, ``synthetic``.
"""
