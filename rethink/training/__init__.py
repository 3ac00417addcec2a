"""Training: the LightningModule, Lightning runs of a stage (fit / validate), recipes, loggers, imported weights."""
