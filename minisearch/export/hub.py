"""`minisearch export hub RUN STAGE`: a stage's adapter with its model card, uploaded to the
Hugging Face Hub through `huggingface_hub` (needs a token with write access and internet).

    hf auth login                                   # or HF_TOKEN=...
    minisearch export hub runs/qwen1.5b qa-sft --repo me/qwen1.5b-search-agent
    minisearch export hub runs/demo qa-sft --merged  # a base the run built (the tiny model): merged

An adapter is of use only with its base on the Hub, so an adapter of a base the run built
itself (the tiny model) goes up merged (`--merged`: export/merged.py). What goes up is a
staged copy: the adapter's files and a card made afresh from the run folder for the Hub (its
header names the base by its Hub id only).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from minisearch.errors import UserError

HOW = ("it needs a Hugging Face token with write access (`hf auth login`, or HF_TOKEN) and internet "
       "(HF_HUB_OFFLINE unset)")


def upload(root: str | Path, stages, name: str, repo: str | None = None, merged: bool = False,
           private: bool = False, echo=print) -> str:
    """Upload stage `name`'s adapter (or, `merged`, the merged model) with its card; returns
    the repo's URL. Offline, without a token, or refused by the Hub: a UserError naming both."""
    from huggingface_hub import HfApi, constants, get_token

    from minisearch.export.card import adapter_stage, base_of, card_text
    from minisearch.export.merged import merge

    root = Path(root)
    stage = adapter_stage(stages, name, root)
    base = base_of(stage.cfg.model, root)
    if not merged and base["hub_id"] is None:
        raise UserError(f"the base model of {name} is {base['name']}, a folder of this run and not on the Hub, so "
                        f"its adapter alone is of no use there: upload it merged, `minisearch export hub {root} "
                        f"{name} --merged`")
    token = get_token()
    if constants.HF_HUB_OFFLINE or not token:
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "no Hugging Face token was found"
        raise UserError(f"export hub: {why}; {HOW}. The card alone is in {Path(stage.cfg.out) / 'adapter'}/README.md")
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "upload"
        if merged:
            merge(root, stages, name, folder, hub=True)
        else:
            shutil.copytree(Path(stage.cfg.out) / "adapter", folder)
            (folder / "README.md").write_text(card_text(root, stages, name, hub=True), encoding="utf-8")
        try:
            repo = repo or f"{api.whoami()['name']}/{root.name}-{name}"
            api.create_repo(repo, private=private, exist_ok=True)
            api.upload_folder(folder_path=str(folder), repo_id=repo,
                              commit_message=f"minisearch: {root.name}/{name}" + (" (merged)" if merged else ""))
        except Exception as e:  # httpx's, the Hub's and offline errors alike: name what it needs
            raise UserError(f"export hub: the upload to {repo or 'the Hub'} failed ({type(e).__name__}: {e}); "
                            f"{HOW}") from e
    url = f"{constants.ENDPOINT}/{repo}"
    echo(f"uploaded {root.name}/{name}{' merged' if merged else ''} to {url}")
    return url
