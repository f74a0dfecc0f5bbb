"""What `Makeflow.py` declares: rules as frozen data, file patterns, recipes and their code
digests, the configuration, and the loader that runs the rules file.

May import `store` (for digests) and `errors`; knows nothing of graphs, plans or builds.
"""
