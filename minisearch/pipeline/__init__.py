"""The recipe runner and the run folder: recipes, stage order, done.json, checkpoints."""
