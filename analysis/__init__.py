"""Analysis of AVMoE models: router statistics, robustness tables, feature embeddings and paper-style figures.

Every number comes through the library's two doors: `avmoe.predict.Predictor` for per-clip inference and
`avmoe.evaluate.evaluate` for metrics. `python -m analysis figures --out DIR` makes every figure.
"""
