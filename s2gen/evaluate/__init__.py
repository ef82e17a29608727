"""Evaluation of series encoders on real data (extra ``eval``; torch for models).

- ``ts_format`` / ``series_format``: readers for UCR/UEA ``.ts`` and .csv/.npy series;
- ``datasets``: resolve datasets by path or by name from files shipped in packages;
- ``protocols``: frozen-embedding linear classification and ridge forecasting probes;
- ``baselines``: 1-NN Euclidean, logistic regression on raw series, naive forecasts;
- ``suite`` / ``report``: models x datasets x seeds, results.json / .md / .png;
- ``finetune``: full fine-tuning with a linear head and early stopping;
- ``cli``: the ``s2gen evaluate`` and ``s2gen finetune`` commands.

Importing this package imports nothing heavy; each module imports what it needs.
"""
