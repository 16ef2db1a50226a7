"""Loading layer: checkpoints, models, architecture adapters, golden sets, exported and compiled runtimes."""
