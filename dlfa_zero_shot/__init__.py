"""
The zero-shot harness around the DLFA plugin: task facts (`tasks`), file readers (`readers`), the local and Hub data
sources and the zero-shot rule (`data`), tokenisation (`features`), the offline backbone (`offline_backbone`), and
run naming, layer selection, statistics, tables and heatmaps (`analysis`). `examples/run_zero_shot.py` is the script
that trains and evaluates; `benchmarks/` drive it and report through `analysis`. See docs/architecture.md.
"""
