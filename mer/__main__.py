"""`python -m mer`: the same command as `mer` (useful where the console script is not on PATH)."""

from mer.cli import main

main()
