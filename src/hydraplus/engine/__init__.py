"""Lightning engine: training modules, checkpoints, progress."""
