"""Stage 3: RAMP tasks, salient spans masked out of passages."""
