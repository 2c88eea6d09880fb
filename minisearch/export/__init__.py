"""What a run hands on: `minisearch export verl` (veRL's RL parquet, a reward entry point, a
search tool over `minisearch serve`: the same tasks, rewards and index on many GPUs, no
home-made distributed trainer), and the agent itself: a model card in every adapter folder
(`card.py`), the adapter merged into its base as one plain model folder (`merged.py`), the
adapter or the merged model uploaded to the Hugging Face Hub (`hub.py`).
"""
