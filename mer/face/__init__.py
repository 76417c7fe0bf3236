"""Faces: MTCNN detection (`detect`), alignment by the eye line (`align`), the content-addressed crop cache
(`cache`), optical flow and LBP-TOP features (`flow`, `lbptop`) and apex spotting (`spot`).

Import the submodule you need: only `detect` loads torch and facenet-pytorch.
"""
