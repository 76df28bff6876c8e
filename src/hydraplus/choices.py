"""Names of choices that every layer and the command line share, in a module that imports nothing,
so that `hydraplus --help` answers without loading PyTorch.

``PRECISIONS``: the numerical precisions (`hydraplus.core.precision` says what each does).
``STRATEGIES``: Lightning strategies whose processes all run the whole program (see
`hydraplus.engine.distributed`); spawning ones would train in copies whose results the calling
process never sees.
"""

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true")
