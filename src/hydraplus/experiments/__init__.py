"""Running experiments: the runner (train, distil, load), evaluation, export and `distil` for any teacher."""
