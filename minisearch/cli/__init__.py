"""The command line: `minisearch STAGE ...` per stage, `run` for a recipe, `chat`/`ask`."""

from minisearch.cli.main import main

__all__ = ["main"]
