"""Spotting: finding micro- (ME) and macro-expression (MaE) intervals in long videos, and spot-then-recognize."""
