"""Evaluation of series encoders on real data (extra ``eval``; torch for models).

- ``ts_format`` / ``series_format``: readers for UCR/UEA ``.ts``, UCR ``.tsv``/``.txt``
  and .csv/.npy series;
- ``datasets``: resolve datasets by path or by name from files shipped in packages;
- ``archive``: the sets of a local UCR/UEA archive copy (``--ucr-root``);
- ``protocols``: frozen-embedding classification (logreg, SVM, random forest) and
  ridge forecasting probes (``window`` and ``ts2vec`` protocols);
- ``anomaly``: anomaly detection on a labelled series (``ANOMALY_SCORES``, the
  threshold rule, F1 with point adjustment, z-score and random baselines);
- ``frozen``: a pretrained encoder as the probes call it (embeddings, last-token states);
- ``baselines``: 1-NN Euclidean, the probe's classifier on raw series, catch22 +
  random forest, MiniRocket, 1-NN DTW (``dtw``: the Numba kernel), naive forecasts;
- ``suite`` / ``report`` / ``ranking``: models x datasets x seeds, results.json /
  .md / .png, average ranks and wins/ties/losses;
- ``finetune``: full fine-tuning with a linear head and early stopping;
  ``finetune_settings``: its ``--config`` file;
- ``cli``: the ``s2gen evaluate`` and ``s2gen finetune`` commands.

Importing this package imports nothing heavy; each module imports what it needs.
"""
