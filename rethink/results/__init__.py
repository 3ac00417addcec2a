"""The results side: from ``result.json`` files to tables, plots and reports, and where the cells of a sweep stand.

- :mod:`~rethink.results.tables`: reading and checking result files, grouping them into tables of rows and cells;
- :mod:`~rethink.results.render`: a table as rendered rows, Markdown and CSV;
- :mod:`~rethink.results.report`: the report's files and ``report.md``, ``python -m rethink.report`` and the sweep
  summary (a Hydra callback);
- :mod:`~rethink.results.wandb_upload`: the report as a W&B run;
- :mod:`~rethink.results.plots`: the report's figures;
- :mod:`~rethink.results.published`: the paper's published numbers (``published.json``);
- :mod:`~rethink.results.progress`: where the cells of a sweep stand (their ``status.json``, written by
  :mod:`rethink.pipeline.status`), the sweep's progress (a Hydra callback) and ``python -m rethink.progress``.

Names of pruned settings and files come from :mod:`rethink.pruning.naming`. Nothing is imported here: matplotlib and
W&B load only when a report is written; the engine (``rethink.pipeline``) imports nothing of this package.
"""
