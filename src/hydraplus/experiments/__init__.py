"""Experiment configs (one JSON file per experiment), method presets and the runner."""
