"""Stages 4-6: trajectories from teachers, SFT, DAPO with its rewards and curriculum."""
