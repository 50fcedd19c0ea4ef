"""harness: the zoo-bench host (plugin manager, cell runner, measurement, results, reports, CLI).

Nothing in this package imports a deep-learning framework; frameworks are imported only inside
the worker process of one benchmark cell, by the plugin that needs them.
"""
