"""The results side: from ``result.json`` files to tables, plots and reports, and where the cells of a sweep stand.

- :mod:`~rethink.results.tables`: reading and checking result files, grouping them into tables of rows and cells;
- :mod:`~rethink.results.render`: a table as rendered rows, Markdown and CSV;
- :mod:`~rethink.results.report`: the report's files and ``report.md``, ``python -m rethink.report`` and the sweep
  summary (a Hydra callback);
- :mod:`~rethink.results.wandb_upload`: the report as a W&B run;
- :mod:`~rethink.results.plots`: the report's figures;
- :mod:`~rethink.results.published`: the paper's published numbers (``published.json``);
- :mod:`~rethink.results.naming`: names of pruned settings and files, and the pruner-specific knowledge of this side;
- :mod:`~rethink.results.progress`: ``status.json`` per cell, the sweep's progress (a Hydra callback) and
  ``python -m rethink.progress``.

Nothing is imported here: ``rethink.results.naming`` stays cheap for the training side, matplotlib and W&B load only
when a report is written.
"""
