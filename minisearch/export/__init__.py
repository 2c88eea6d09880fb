"""Hand-offs to other trainers: `minisearch export verl` (veRL's RL parquet, a reward entry
point, a search tool over `minisearch serve`). DESIGN.md section 8: no home-made
distributed trainer; the same tasks, rewards and index go to veRL.
"""
