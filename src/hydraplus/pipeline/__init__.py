"""The one training pipeline: the ensemble and every student, of a config run and of `hydraplus.distil`
alike, train through `hydraplus.pipeline.train`; `hydraplus.pipeline.run_folder` is the one run-folder
schema that evaluation, comparison, export and `load_distilled` read."""
