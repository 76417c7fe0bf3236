"""Evaluation: LOSO folds (`loso`: fine-tune → embed → SVM), the SVM itself (`svm`), MEGC metrics (`metrics`),
seeds, bootstrap intervals, run results and reports.

Import the submodule you need: `mer report` needs no training stack.
"""
