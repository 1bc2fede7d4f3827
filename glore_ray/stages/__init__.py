"""Stages: each a function of (config, input artifacts) writing ``<run_dir>/<stage>/`` (docs/architecture.md §2).

Stage functions orchestrate the pure paper logic (tasks/, labeling/, decide/, metrics) and the
edges (rollout/, training/, serving/). Jobs call exactly one of them.
"""
