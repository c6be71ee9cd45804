"""The application layer: one use case per module, the only importer of the stages.

Drivers (cli, schedule, web) call these functions with plain values; a test can hand a use
case a built issue or a loaded market instead of rebuilding it.
"""
