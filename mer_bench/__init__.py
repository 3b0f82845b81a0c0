"""mer-bench: honest, reproducible benchmarks for micro-expression recognition.

The pipeline: dataset -> representation -> protocol folds -> method fit/predict ->
predictions store -> metrics -> leaderboard. Importing this package is cheap (no torch).
"""

__version__ = "0.1.0"
