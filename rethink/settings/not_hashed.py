"""The settings no stage key hashes (:mod:`rethink.pipeline.keys`), each known not to change what a stage computes;
the report leaves them out too when it compares old results by their config (:mod:`rethink.results.identity`)."""

NOT_HASHED: dict[str, str] = {
    # where the images are read from and how fast; a data set is identified by its name, classes, size and subsets
    "dataset.npz_path": "the file the images are read from",
    "dataset.root": "the folder the images are read from",
    "dataset.download": "whether missing files may be downloaded",
    "dataset.num_workers": "loader worker processes",
    # the test accuracy of a model does not depend on the evaluation batch size (BN in eval mode)
    "dataset.test_batch_size": "evaluation batch size",
    # the data set's default recipe feeds pretrain.* and schedule.*, whose resolved values the stages hash
    "dataset.recipe": "defaults of pretrain.* and schedule.*",
    # how a run shows and logs its progress
    "trainer.enable_progress_bar": "progress display",
    "trainer.enable_model_summary": "model summary display",
    "trainer.log_every_n_steps": "logging frequency",
    "trainer.profiler": "profiling",
}
