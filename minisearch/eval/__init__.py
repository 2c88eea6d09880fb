"""Stage 7: metrics, the evaluation loop and stage, QA sets, the run report."""
