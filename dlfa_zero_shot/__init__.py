"""
The zero-shot harness around the DLFA plugin: task facts (`tasks`), file readers (`readers`), the local and Hub data
sources and the zero-shot rule (`data`), tokenisation (`features`), the offline backbone (`offline_backbone`), run
naming, layer selection, tables and heatmaps (`analysis`), what made each run (`provenance`), whole-file writes
(`files`), complete checkpoints (`checkpoints`), one process per run folder (`run_lock`), clean stops (`stopping`),
each run's Hub model card (`model_card`), and, read by the benchmarks alone, the pre-registered plans (`plans`), the
report (`report`) and its statistics (`study_statistics`).
`examples/run_zero_shot.py` is the script that trains and evaluates; `benchmarks/` drive it and report through
`report`. See docs/architecture.md.
"""
