"""One word per thing: a setting renamed keeps its old name only as an error that names the
new one (the search backend and the model backend were both `backend`)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from minisearch.cli.main import main
from minisearch.data.index import IndexConfig
from minisearch.errors import UserError
from minisearch.pipeline.recipe import build
from minisearch.train.sft import SftConfig
from minisearch.train.traj import TrajConfig


@pytest.mark.parametrize("cls, values, new", [
    (IndexConfig, {"source": "s"}, "search_backend"),
    (SftConfig, {"data": "d", "model": "m"}, "model_backend"),
    (TrajConfig, {"tasks": "t", "index": "i", "model": "m"}, "model_backend"),
])
def test_the_old_backend_key_names_the_new_one_of_its_config(cls, values, new):
    with pytest.raises(UserError, match=f"stages.x: 'backend' is now '{new}'"):
        build(cls, {**values, "backend": "gpu"}, "stages.x", fixed={"out": "o"})


@pytest.mark.parametrize("args, new", [
    (["index", "build", "src", "--backend", "bm25s"], "--search-backend"),
    (["sft", "data", "--model", "m", "--out", "o", "--backend", "gpu"], "--model-backend"),
    (["chat", "--run", "r", "--backend", "gpu"], "--model-backend"),
])
def test_the_old_backend_flag_names_the_new_one(args, new):
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and f"--backend is now {new}" in result.output
