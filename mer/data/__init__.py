"""Datasets in, tables out: the readers (`datasets`), the manifest and report tables (`manifest`), labels, the
MEGC2019 list (`megc`), augmentation (`transforms`, `batch_augment`) and the Lightning data module (`datamodule`).

Import the submodule you need, so the light parts stay light.
"""
