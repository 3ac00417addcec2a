"""The cell pipeline: plan, stage keys, the artifact store and the one stage path, the runner, result.json."""
