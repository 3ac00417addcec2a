"""rethink's Hydra sweeper plugin (Hydra finds sweepers in the ``hydra_plugins`` namespace package only)."""
